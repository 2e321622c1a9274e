"""Weight-space averaging of the fine-tuned model with the base encoder (WiSE-FT).

Wortsman et al. 2022, "Robust fine-tuning of zero-shot models": averaging a fine-tuned
network's weights with those it started from keeps much of what fine-tuning overwrote
and transfers better to text unlike the training set, at the same size and speed.

Our base encoder has no classifier of its own, so the "zero-shot" end is the base
encoder with *probe heads*: the three heads trained on its frozen mean-pooled features
with the training loss. ``θ(α) = (1 - α) · (base, probe heads) + α · (fine-tuned model)``,
every parameter. ``α`` is chosen on the validation split (:func:`choose_alpha`), never on
held-out or evaluation-only data.

Only training imports this module (torch); serving loads the exported result.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from filterd.classify.data import Example
from filterd.classify.distill import SoftLabel
from filterd.classify.model import FilterdModel
from filterd.types import CATEGORIES

if TYPE_CHECKING:
    from filterd.classify.train import TrainConfig

HEADS = ("category", "flags", "intensity")
ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)


def pooled_features(
    model: FilterdModel, tokenizer: Any, texts: Sequence[str], max_len: int,
    batch_size: int = 128,
) -> torch.Tensor:
    """The mean-pooled encoder output of each text (what the heads read), no dropout."""
    model.eval()
    out = torch.zeros(len(texts), model.category.in_features)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            b = order[k : k + batch_size]
            enc = tokenizer([texts[i] for i in b], truncation=True, max_length=max_len,
                            padding=True, return_tensors="pt")
            out[b] = model.pooled(enc["input_ids"], enc["attention_mask"])
    return out


@dataclass(frozen=True)
class ProbeConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 13


def train_probe_heads(
    model: FilterdModel, features: torch.Tensor, train_ex: list[Example],
    soft: list[SoftLabel | None] | None, config: TrainConfig, probe: ProbeConfig,
) -> None:
    """Train ``model``'s three heads in place on fixed ``features`` (one row per
    ``train_ex``) with :func:`filterd.classify.train.training_loss`, the loss and class
    and flag weights of ``config`` that :func:`filterd.classify.train.fit` uses."""
    from filterd.classify.train import _class_weights, _flag_pos_weight, _tensors, training_loss

    if len(features) != len(train_ex):
        raise ValueError(f"{len(features)} feature rows for {len(train_ex)} examples")
    torch.manual_seed(probe.seed)
    rng = random.Random(probe.seed)
    heads = [getattr(model, h) for h in HEADS]
    for h in heads:
        h.reset_parameters()
    labels = _tensors(train_ex, [[0]] * len(train_ex), list(range(len(train_ex))), soft)
    a = config.distill_weight if soft is not None else 0.0
    class_w = _class_weights(train_ex)
    ce = nn.CrossEntropyLoss(weight=class_w, reduction="none", ignore_index=-100)
    bce = nn.BCEWithLogitsLoss(reduction="none",
                               pos_weight=_flag_pos_weight(train_ex, config.max_pos_weight))
    params = [p for h in heads for p in h.parameters()]
    opt = torch.optim.AdamW(params, lr=probe.lr)
    index = list(range(len(train_ex)))
    for _ in range(probe.epochs):
        rng.shuffle(index)
        for k in range(0, len(index), probe.batch_size):
            b = torch.tensor(index[k : k + probe.batch_size])
            t = {name: v[b] for name, v in labels.items()}
            x = features[b]
            loss = training_loss(model.category(x), model.flags(x),
                                 model.intensity(x).squeeze(-1), t, ce, bce, class_w, a, config)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    model.eval()


def interpolate(
    zero_shot: dict[str, torch.Tensor], fine_tuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * zero_shot + alpha * fine_tuned`` for every floating-point tensor;
    other buffers (position ids) are taken from ``fine_tuned``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}: must lie in [0, 1]")
    if zero_shot.keys() != fine_tuned.keys():
        raise ValueError("the two models have different parameters: "
                         f"{sorted(zero_shot.keys() ^ fine_tuned.keys())[:5]}")
    out = {}
    for k, ft in fine_tuned.items():
        zs = zero_shot[k]
        if zs.shape != ft.shape:
            raise ValueError(f"{k}: shape {tuple(zs.shape)} against {tuple(ft.shape)}")
        out[k] = (1.0 - alpha) * zs + alpha * ft if ft.is_floating_point() else ft.clone()
    return out


def valid_scores(logits: np.ndarray, gold: Sequence[str]) -> tuple[float, float]:
    """(macro-F1 over the three categories, abusive recall) of argmax ``logits``."""
    from filterd.classify.evaluate import metrics

    pred = [CATEGORIES[i] for i in logits.argmax(1)]
    m = metrics(list(gold), pred)
    return float(m["macro_f1"]), float(m["per_class"]["abusive"]["recall"])


def choose_alpha(
    scores: dict[float, tuple[float, float]], tolerance: float = 0.005
) -> float | None:
    """The smallest ``alpha`` (most of the base encoder) whose validation macro-F1 and
    abusive recall are each within ``tolerance`` of the fine-tuned model's (``alpha`` 1);
    ``None`` if none below 1 is."""
    if 1.0 not in scores:
        raise ValueError("choose_alpha needs the fine-tuned model's scores (alpha 1.0)")
    f1_ft, rec_ft = scores[1.0]
    for alpha in sorted(a for a in scores if a < 1.0):
        f1, rec = scores[alpha]
        if f1 >= f1_ft - tolerance and rec >= rec_ft - tolerance:
            return alpha
    return None


def average_with_base(
    fine_tuned: FilterdModel, tokenizer: Any, examples: list[Example], config: TrainConfig,
    soft_labels: dict[str, SoftLabel] | None, progress: bool = True,
) -> tuple[FilterdModel, dict[str, Any]]:
    """WiSE-FT of a model :func:`filterd.classify.train.fit` returned, on the same rows:
    probe heads on the frozen base encoder, every ``alpha`` of :data:`ALPHAS` scored on
    the validation split, the one :func:`choose_alpha` picks exported with a temperature
    refitted there. Returns the model (``fine_tuned`` itself when no ``alpha`` qualifies)
    and what was measured."""
    from filterd.classify.distill import text_key
    from filterd.classify.model import base_model_path
    from filterd.classify.train import _rows, fit_temperature, predict_logits

    train_ex, valid_ex = _rows(examples, config, random.Random(config.seed))
    if not valid_ex:
        raise ValueError("WiSE-FT chooses alpha on the validation split, and it is empty")
    soft = ([soft_labels.get(text_key(e.text)) for e in train_ex]
            if soft_labels is not None else None)
    model = FilterdModel.from_base(base_model_path(), config.num_layers)
    if progress:
        print(f"WiSE-FT: base encoder features of {len(train_ex)} training rows",
              file=sys.stderr)
    feats = pooled_features(model, tokenizer, [e.text for e in train_ex], config.max_len)
    probe = ProbeConfig(seed=config.seed)
    train_probe_heads(model, feats, train_ex, soft, config, probe)
    zero_shot = {k: v.clone() for k, v in model.state_dict().items()}
    ft = {k: v.clone() for k, v in fine_tuned.state_dict().items()}
    gold = [str(e.category) for e in valid_ex]
    texts = [e.text for e in valid_ex]
    scores: dict[float, tuple[float, float]] = {}
    logits: dict[float, np.ndarray] = {}
    for a in (*ALPHAS, 1.0):
        model.load_state_dict(interpolate(zero_shot, ft, a))
        logits[a], _, _ = predict_logits(model, tokenizer, texts, config.max_len)
        scores[a] = valid_scores(logits[a], gold)
        if progress:
            print(f"WiSE-FT: alpha {a}: validation macro-F1 {scores[a][0]:.4f}, "
                  f"abusive recall {scores[a][1]:.4f}", file=sys.stderr)
    alpha = choose_alpha(scores)
    info: dict[str, Any] = {"alpha": alpha, "valid_scores": {str(a): list(s) for a, s
                                                              in scores.items()},
                            "probe": asdict(probe)}
    if alpha is None:
        return fine_tuned, info
    model.load_state_dict(interpolate(zero_shot, ft, alpha))
    model.eval()
    labels = np.array([CATEGORIES.index(g) for g in gold])
    info["temperature"] = fit_temperature(logits[alpha], labels)
    info["valid_accuracy"] = float((logits[alpha].argmax(1) == labels).mean())
    return model, info
