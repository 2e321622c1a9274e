"""WiSE-FT: the fine-tuned model averaged in weight space with the base encoder."""

from __future__ import annotations

import pytest
import torch

from filterd.classify import wise
from filterd.classify.data import Example
from filterd.classify.model import FilterdModel
from filterd.classify.train import TrainConfig, predict_logits
from filterd.types import CATEGORIES


def _states() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    zs = {"w": torch.zeros(2, 3), "b": torch.full((3,), 4.0), "ids": torch.arange(3)}
    ft = {"w": torch.ones(2, 3), "b": torch.full((3,), 8.0), "ids": torch.arange(3) + 7}
    return zs, ft


def test_interpolation_ends_are_the_two_models_and_the_middle_is_their_mean() -> None:
    zs, ft = _states()
    assert torch.equal(wise.interpolate(zs, ft, 0.0)["w"], zs["w"])
    assert torch.equal(wise.interpolate(zs, ft, 1.0)["b"], ft["b"])
    mid = wise.interpolate(zs, ft, 0.25)
    assert torch.allclose(mid["w"], torch.full((2, 3), 0.25))
    assert torch.allclose(mid["b"], torch.full((3,), 5.0))
    # integer buffers (position ids) are not averaged: they come from the fine-tuned model
    assert torch.equal(mid["ids"], ft["ids"])
    assert mid["ids"] is not ft["ids"]


def test_interpolation_refuses_models_that_do_not_match() -> None:
    zs, ft = _states()
    with pytest.raises(ValueError, match="alpha 1.5"):
        wise.interpolate(zs, ft, 1.5)
    with pytest.raises(ValueError, match="different parameters"):
        wise.interpolate({**zs, "extra": torch.zeros(1)}, ft, 0.5)
    with pytest.raises(ValueError, match=r"w: shape \(2, 2\)"):
        wise.interpolate({**zs, "w": torch.zeros(2, 2)}, ft, 0.5)


def test_alpha_is_the_smallest_within_tolerance_of_the_fine_tuned_model() -> None:
    scores = {1.0: (0.870, 0.900), 0.9: (0.868, 0.899), 0.8: (0.866, 0.897),
              0.7: (0.866, 0.890), 0.6: (0.850, 0.899), 0.5: (0.800, 0.850)}
    assert wise.choose_alpha(scores) == 0.8  # 0.7 loses recall, 0.6 and 0.5 macro-F1
    assert wise.choose_alpha(scores, tolerance=0.0025) == 0.9
    assert wise.choose_alpha({1.0: (0.87, 0.9), 0.9: (0.80, 0.9)}) is None
    with pytest.raises(ValueError, match="alpha 1.0"):
        wise.choose_alpha({0.9: (0.87, 0.9)})


def test_valid_scores_are_macro_f1_and_abusive_recall() -> None:
    import numpy as np

    logits = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [0, 3.0, 0]])
    f1, recall = wise.valid_scores(logits, ["neutral", "frustrated", "abusive", "abusive"])
    assert recall == 0.5
    assert f1 == pytest.approx((1.0 + 2 / 3 + 2 / 3) / 3, abs=1e-3)


ROWS = [
    Example("how do i change my tariff", "neutral", "t", {"insult": 0}, 0.1),
    Example("thanks, that fixed it", "neutral", "t", {"insult": 0}, 0.05),
    Example("my bill went up again and nobody answers", "frustrated", "t", {"insult": 0}, 0.5),
    Example("third outage this week, this is a joke", "frustrated", "t", {"insult": 0}, 0.6),
    Example("you are a useless idiot", "abusive", "t", {"insult": 1}, 0.9),
    Example("shut up you moron", "abusive", "t", {"insult": 1}, 0.9),
]


def test_probe_heads_learn_from_frozen_features_and_leave_the_encoder_alone() -> None:
    from transformers import AutoTokenizer

    from filterd.classify.model import base_model_path

    torch.manual_seed(0)
    model = FilterdModel.from_base(num_layers=1)
    tok = AutoTokenizer.from_pretrained(str(base_model_path()))
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    texts = [e.text for e in ROWS]
    feats = wise.pooled_features(model, tok, texts, 64)
    # the features are what the heads read in the model's own forward pass
    cat, _, _ = predict_logits(model, tok, texts, 64)
    assert torch.allclose(model.category(feats), torch.from_numpy(cat), atol=1e-4)

    config = TrainConfig(distill_flags=False)
    wise.train_probe_heads(model, feats, ROWS, None, config,
                           wise.ProbeConfig(epochs=300, batch_size=6, lr=1e-2, seed=1))
    cat, flags, _ = predict_logits(model, tok, texts, 64)
    assert [CATEGORIES[i] for i in cat.argmax(1)] == [e.category for e in ROWS]
    assert (flags[4:, 2] > flags[:4, 2].max()).all()  # insult
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, encoder_before[k]), k
    with pytest.raises(ValueError, match="5 feature rows for 6 examples"):
        wise.train_probe_heads(model, feats[:5], ROWS, None, config, wise.ProbeConfig(epochs=1))
