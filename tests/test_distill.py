"""Distillation: ``filterd teach`` soft labels and ``filterd train --soft-labels``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from filterd.classify import distill
from filterd.classify.data import Example
from filterd.classify.onnx import OnnxClassifier, default_model_dir
from filterd.errors import DataError
from filterd.types import CATEGORIES, MODEL_FLAGS

ROWS = [
    Example("my bill went up again and nobody answers", "frustrated", "t", {}, 0.6),
    Example("how do i change my tariff", "neutral", "t", {}, 0.1),
    Example("you are a useless idiot", "abusive", "t", {"insult": 1}, 0.9),
    Example("thanks, that fixed it", "neutral", "t", {}, 0.0, split="valid"),
]


def test_teach_averages_the_teachers_on_training_rows_only(tmp_path: Path) -> None:
    shipped = default_model_dir()
    one = distill.teach(ROWS, [shipped], progress=False)
    two = distill.teach(ROWS, [shipped, shipped], progress=False)
    train_texts = [e.text for e in ROWS if e.split == "train"]
    assert set(one) == {distill.text_key(t) for t in train_texts}  # the valid row is left out
    direct = OnnxClassifier(shipped).predict(train_texts)
    for text, out in zip(train_texts, direct, strict=True):
        lab = one[distill.text_key(text)]
        assert lab.category == pytest.approx([out.scores[c] for c in CATEGORIES], abs=1e-5)
        assert lab.flags == pytest.approx([out.flag_scores[f] for f in MODEL_FLAGS], abs=1e-5)
        # a model averaged with itself is itself
        assert two[distill.text_key(text)].category == pytest.approx(lab.category, abs=1e-5)
    # the insult is the most abusive of the three, by the teacher
    insult = one[distill.text_key("you are a useless idiot")]
    assert insult.category[CATEGORIES.index("abusive")] > 0.5

    path = tmp_path / "soft.jsonl"
    distill.save(one, distill.teacher_info([shipped]), path)
    header, back = distill.load(path)
    assert header["rows"] == 3 and header["teachers"][0]["sha256"]
    assert back == one


@pytest.mark.parametrize(("body", "says"), [
    ("", "is empty"),
    ('{"key": "a", "category": [1, 0, 0], "flags": [0, 0, 0, 0, 0]}\n', "header"),
    ('{"teachers": []}\n{"key": "a", "category": [1, 0], "flags": [0, 0, 0, 0, 0]}\n',
     "expected 3 category"),
    ('{"teachers": []}\n{"key": "a", "category": [0.5, 0.2, 0.1], "flags": [0, 0, 0, 0, 0]}\n',
     "sum to 1"),
    ('{"teachers": []}\n{"key": "a", "flags": [0, 0, 0, 0, 0]}\n', "needs \"key\""),
    ('{"teachers": []}\nnot json\n', "not JSON"),
])
def test_a_malformed_soft_label_file_is_a_clear_error(tmp_path: Path, body: str,
                                                       says: str) -> None:
    path = tmp_path / "soft.jsonl"
    path.write_text(body)
    with pytest.raises(DataError, match=says):
        distill.load(path)


def test_the_soft_losses_equal_the_gold_ones_for_one_hot_teachers() -> None:
    """With soft labels equal to the gold labels, unit weights and every flag labelled, the
    distillation terms are the gold losses themselves, so ``a`` only mixes like with like;
    soft labels that disagree with gold raise the loss."""
    from torch import nn

    from filterd.classify.train import _distilled

    torch.manual_seed(0)
    c, f = torch.randn(4, len(CATEGORIES)), torch.randn(4, len(MODEL_FLAGS))
    gold = torch.tensor([0, 1, 2, 1])
    flags = torch.tensor([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0], [0, 1, 0, 0, 0]],
                         dtype=torch.float)
    t = {"category": gold, "weight": torch.ones(4), "soft_mask": torch.ones(4),
         "soft_category": nn.functional.one_hot(gold, len(CATEGORIES)).float(),
         "soft_flags": flags}
    class_w = torch.ones(len(CATEGORIES))
    hard_c = nn.functional.cross_entropy(c, gold)
    hard_f = nn.functional.binary_cross_entropy_with_logits(f, flags)
    mixed_c, mixed_f = _distilled(c, f, t, class_w, hard_c, hard_f, 0.5)
    assert mixed_c.item() == pytest.approx(hard_c.item(), rel=1e-5)
    assert mixed_f.item() == pytest.approx(hard_f.item(), rel=1e-5)
    wrong = dict(t, soft_category=nn.functional.one_hot((gold + 1) % 3, len(CATEGORIES)).float())
    worse_c, _ = _distilled(c, f, wrong, class_w, hard_c, hard_f, 0.5)
    assert worse_c.item() > hard_c.item()
    # flag logits that agree with gold; teachers that say the opposite
    fit = (flags * 2 - 1) * 3
    fit_hard = nn.functional.binary_cross_entropy_with_logits(fit, flags)
    opposed = dict(t, soft_flags=1 - flags)
    _, gold_f = _distilled(c, fit, opposed, class_w, hard_c, fit_hard, 0.5, flags=False)
    assert gold_f is fit_hard  # without the flags, the flag loss is the gold one
    _, taught_f = _distilled(c, fit, opposed, class_w, hard_c, fit_hard, 0.5)
    assert taught_f.item() > fit_hard.item() + 1
    none = dict(t, soft_mask=torch.zeros(4))  # rows without soft labels: gold losses only
    assert _distilled(c, f, none, class_w, hard_c, hard_f, 0.5) == (hard_c, hard_f)


@pytest.mark.slow
def test_train_with_soft_labels_records_its_teachers(tmp_path: Path) -> None:
    from filterd.classify.train import TrainConfig, train

    rows = [Example(f"{e.text} number {i}", e.category, e.source, e.flags, e.intensity,
                    split=e.split) for i in range(12) for e in ROWS]
    labels = distill.teach(rows, [default_model_dir()], progress=False)
    info = distill.teacher_info([default_model_dir()])
    meta = train(rows, tmp_path / "m", TrainConfig(epochs=1, batch_size=8, threads=1),
                 progress=False, soft_labels=({"teachers": info}, labels))
    assert meta["distilled_from"] == {"teachers": info, "rows_covered": 36}
    assert meta["train_config"]["distill_weight"] == 0.5
    assert OnnxClassifier(tmp_path / "m").predict(["hello"])[0].scores

    plain = train(rows, tmp_path / "p", TrainConfig(epochs=1, batch_size=8, threads=1),
                  progress=False)
    assert plain["distilled_from"] is None

    other = {distill.text_key("a text of another dataset"): next(iter(labels.values()))}
    with pytest.raises(DataError, match="cover 0 of 36 training rows"):
        train(rows, tmp_path / "x", TrainConfig(epochs=1), progress=False,
              soft_labels=({"teachers": info}, other))


def test_teach_command_writes_soft_labels(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from filterd.cli import main

    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(e.to_json() + "\n" for e in ROWS))
    out = tmp_path / "soft.jsonl"
    assert main(["teach", "--dataset", str(ds), "--teacher", str(default_model_dir()),
                 "--out", str(out)]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header["rows"] == 3 and len(out.read_text().splitlines()) == 4
    assert main(["teach", "--dataset", str(ds), "--teacher", str(tmp_path),
                 "--out", str(out)]) != 0
    assert "not a model folder" in capsys.readouterr().err


@pytest.mark.parametrize("weight", [0.0, -0.5, 1.5])
def test_a_distill_weight_outside_zero_to_one_is_refused(tmp_path: Path, weight: float) -> None:
    from filterd.classify.train import TrainConfig, train
    from filterd.errors import ConfigError

    labels = {distill.text_key(e.text): distill.SoftLabel((1.0, 0.0, 0.0), (0.0,) * 5)
              for e in ROWS}
    with pytest.raises(ConfigError, match=r"must lie in \(0, 1\]"):
        train(ROWS, tmp_path / "m", TrainConfig(distill_weight=weight), progress=False,
              soft_labels=({"teachers": []}, labels))
    assert not (tmp_path / "m").exists()  # refused before any training
