"""CI trains a tiny model on a small slice, to prove `filterd train` runs end to end.

It does not retrain the shipped model: it checks that the pipeline (build -> train ->
ONNX export -> int8 -> serve) works and that the served model agrees with torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from filterd.classify import data

from .conftest import SHARED_DATA


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_tiny_training_run(tmp_path: Path) -> None:
    from filterd.classify.onnx import OnnxClassifier
    from filterd.classify.train import TrainConfig, train
    from filterd.cli import main

    examples = data.build(SHARED_DATA, sources=["banking77", "goemotions", "team"], scale=0.03,
                          progress=False)
    meta = train(examples, tmp_path / "m", TrainConfig(epochs=1, limit=160, batch_size=16),
                 progress=False, keep_weights=True)
    assert meta["train_examples"] == 160
    assert meta["drop_handles"] is True  # the default since v17
    assert (tmp_path / "m" / "model.onnx").stat().st_size > 1_000_000
    clf = OnnxClassifier(tmp_path / "m")
    assert clf.drop_handles is True  # serving reads text as training did
    outs = clf.predict(["hello", "this is the third time my internet is down"])
    for o in outs:
        assert abs(sum(o.scores.values()) - 1) < 1e-4
        assert 0 <= o.intensity <= 1
    assert not np.allclose(list(outs[0].scores.values()), list(outs[1].scores.values()))
    # the CLI serves the freshly trained model too
    assert main(["eval", "--model-dir", str(tmp_path / "m"), "--data", str(SHARED_DATA),
                 "--limit", "40", "--no-baselines", "--out", str(tmp_path / "e.json"),
                 "--tables", str(Path(__file__).parent / "data"), "--emoji-probe"]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["safety_table"]["threat"]["n"] >= 20
    assert report["telecom_table"]["must_n"] > 0 and report["emoji_probe"]["n"] > 0
    # the kept weights export again to the very same model: `filterd export` reproduces the
    # training's export byte for byte, and records how it was quantised
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "filterd_model.json").read_text())
    assert again["sha256"] == meta["sha256"]
    assert again["quantization"] == meta["quantization"] and "per output channel" in \
        meta["quantization"]
    assert {k: v for k, v in again.items() if k not in ("sha256",)} == \
        {k: v for k, v in meta.items() if k not in ("sha256",)}


def test_export_without_kept_weights_is_a_clear_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from filterd.cli import main

    (tmp_path / "filterd_model.json").write_text("{}")
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "weights.safetensors" in err and "--keep-weights" in err
    assert not (tmp_path / "out").exists()



@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_wise_training_chooses_alpha_on_the_validation_split(tmp_path: Path) -> None:
    from filterd.classify import wise
    from filterd.classify.onnx import OnnxClassifier
    from filterd.classify.train import TrainConfig, train

    examples = data.build(SHARED_DATA, sources=["banking77", "goemotions", "team"], scale=0.03,
                          progress=False)
    meta = train(examples, tmp_path / "m",
                 TrainConfig(epochs=1, limit=160, batch_size=16, wise=True), progress=False)
    info = meta["wise"]
    scores = {float(a): tuple(s) for a, s in info["valid_scores"].items()}
    assert set(scores) == {*wise.ALPHAS, 1.0}
    assert info["alpha"] == wise.choose_alpha(scores)  # the recorded choice is the rule's
    if info["alpha"] is not None:
        assert meta["temperature"] == info["temperature"]
        assert meta["valid_accuracy"] == info["valid_accuracy"]
    out = OnnxClassifier(tmp_path / "m").predict(["this is the third time my internet is down"])
    assert abs(sum(out[0].scores.values()) - 1) < 1e-4

def test_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    import shutil

    from filterd.classify.onnx import OnnxClassifier, default_model_dir
    from filterd.errors import ModelError

    shutil.copytree(default_model_dir(), tmp_path / "m")
    with (tmp_path / "m" / "tokenizer.json").open("a") as f:
        f.write(" ")
    with pytest.raises(ModelError, match="SHA-256"):
        OnnxClassifier(tmp_path / "m")


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    from filterd.classify.onnx import OnnxClassifier
    from filterd.errors import ModelError

    with pytest.raises(ModelError, match="No model"):
        OnnxClassifier(tmp_path)


def test_train_on_a_missing_gpu_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from filterd.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", "--device", "cuda", "--dataset", "nope.jsonl"]) == 2
    assert "--device cuda" in capsys.readouterr().err


def test_the_evaluator_refuses_verdicts_degraded_to_the_detectors() -> None:
    """Figures from a failed model would be the detectors' reported as the model's."""
    from filterd.classify.evaluate import filterd_predictor
    from filterd.classify.fake import FailingClassifier, KeywordClassifier
    from filterd.config import load_settings
    from filterd.errors import ModelError
    from filterd.pipeline import Filter

    settings = load_settings(model_timeout_ms=0)
    ok = filterd_predictor(Filter(settings, classifier=KeywordClassifier()))
    assert [c for c, _ in ok(["thanks, all sorted", "you idiot"])] == ["neutral", "abusive"]
    failing = filterd_predictor(Filter(settings, classifier=FailingClassifier()))
    with pytest.raises(ModelError, match="degraded to the detectors"):
        failing(["thanks, all sorted"])


def test_safety_alarms_count_each_flag_and_the_queues_they_reach() -> None:
    from filterd.classify.evaluate import safety_alarms
    from filterd.classify.fake import KeywordClassifier
    from filterd.config import load_settings
    from filterd.pipeline import Filter

    flt = Filter(load_settings(model_timeout_ms=0), classifier=KeywordClassifier())
    texts = ["where is my parcel", "I want to kill myself", "still waiting, 3 hours", ""]
    verdicts = [flt.check(t) for t in texts[:3]]
    expected = sum("self_harm" in v.flags for v in verdicts)
    assert expected == 1  # the self-harm phrase, not the fake model, raises it
    report = safety_alarms(flt, texts)
    assert report["n"] == 4
    assert report["self_harm"] == {"count": 1, "rate": 0.25}
    assert report["threat"]["count"] == 0
    assert report["crisis_route"] == 1


def test_eval_scores_the_test_tables_as_the_tests_do(tmp_path: Path) -> None:
    """``filterd eval --tables``: safety-flag recall with the ids missed, hard-negative
    alarms, telecom accuracy on all and on "must" rows; and the emoji probe."""
    from filterd.classify.evaluate import case_tables, emoji_probe
    from filterd.classify.fake import KeywordClassifier
    from filterd.config import load_settings
    from filterd.errors import DataError
    from filterd.pipeline import Filter

    flt = Filter(load_settings(model_timeout_ms=0), classifier=KeywordClassifier())
    safety = [
        {"id": "s1", "text": "I want to kill myself", "flag": "self_harm"},
        {"id": "s2", "text": "please send the invoice again", "flag": "self_harm"},
        {"id": "t1", "text": "please send the invoice again", "flag": "threat"},
        {"id": "n1", "text": "where is my parcel", "flag": "none"},
        {"id": "n2", "text": "I want to kill myself", "flag": "none"},
    ]
    telecom = [
        {"id": "a", "text": "you idiot", "category": "abusive", "must": True},
        {"id": "b", "text": "still waiting, 3 hours", "category": "frustrated", "must": True},
        {"id": "c", "text": "thanks, all sorted", "category": "neutral", "must": False},
        {"id": "d", "text": "thanks, all sorted", "category": "frustrated", "must": True},
    ]
    for name, rows in (("safety_cases", safety), ("telecom_cases", telecom)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = case_tables(flt, tmp_path)
    st = report["safety_table"]
    assert st["self_harm"] == {"caught": 1, "n": 2, "missed": ["s2"]}
    assert st["threat"] == {"caught": 0, "n": 1, "missed": ["t1"]}
    assert st["sexual_harassment"] == {"caught": 0, "n": 0, "missed": []}
    assert st["hard_negatives"] == {"alarms": 1, "n": 2, "ids": ["n2"]}
    assert report["telecom_table"] == {"n": 4, "accuracy": 0.75, "must_n": 3,
                                       "must_accuracy": round(2 / 3, 4)}
    assert case_tables(flt, tmp_path / "none") == {}  # no table there, nothing scored
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/telecom_cases.jsonl").write_text('{"id": "a", "text": "hi"}\n')
    with pytest.raises(DataError, match="line 1: a row needs the keys"):
        case_tables(flt, tmp_path / "bad")
    probe = emoji_probe(flt, ["thanks, all sorted", "you idiot"])
    assert probe["n"] == 2 and len(probe["by_emoji"]) == 12
    assert probe["plain_abusive"] == probe["with_emoji_abusive"] == 0.5  # keywords only


def test_eval_tables_folder_must_exist(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from filterd.cli import main

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "set.jsonl").write_text(json.dumps(
        {"text": "hello there", "category": "neutral", "source": "x", "split": "valid"}) + "\n")
    assert main(["eval", "--dataset", str(tmp_path / "set.jsonl"), "--data", str(data_dir),
                 "--no-baselines", "--tables", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "e.json")]) == 2
    assert "--tables" in capsys.readouterr().err


def test_eval_says_when_the_airline_tweets_are_missing(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    """A data folder without ``eval_only/airline_tweets`` leaves the report's main
    customer-service line out: said on stderr and recorded in the report."""
    from filterd.cli import main

    (tmp_path / "data").mkdir()
    (tmp_path / "set.jsonl").write_text(json.dumps(
        {"text": "hello there", "category": "neutral", "source": "x", "split": "valid"}) + "\n")
    assert main(["eval", "--dataset", str(tmp_path / "set.jsonl"), "--data",
                 str(tmp_path / "data"), "--no-baselines", "--out", str(tmp_path / "e.json")]) == 0
    assert "airline_tweets/dev.csv not found" in capsys.readouterr().err
    report = json.loads((tmp_path / "e.json").read_text())
    assert "airline" not in report and "not found" in report["skipped"]["airline"]
    # nor are the held-out sources a hand-made dataset lacks scored as empty sets
    assert "holdout:stormfront" not in report
    assert report["skipped"]["holdout:stormfront"] == "the dataset has no rows of stormfront"


def test_a_model_reads_emoji_the_way_its_training_set_has_them(tmp_path: Path) -> None:
    """Trained on a raw-emoji build (v7's), a model is served raw emoji; on a named build
    (the default, the shipped v21's and v17's), their names. The meta file carries the choice to
    serving."""
    import json
    import shutil

    from filterd.classify.onnx import OnnxClassifier, default_model_dir
    from filterd.classify.train import reads_emoji_as_words

    row = data.Example("thanks 🙏", "neutral", "team", {}, None)
    named = data.Example("thanks folded hands", "neutral", "team", {}, None)
    assert reads_emoji_as_words([named]) and not reads_emoji_as_words([named, row])

    shipped = OnnxClassifier(default_model_dir())
    assert shipped.emoji_as_words is True  # v21 (like v17, v14) was trained on emoji names
    a, b = shipped.predict(["thanks 🙏", "thanks folded hands"])
    assert a.scores == b.scores
    shutil.copytree(default_model_dir(), tmp_path / "m")
    meta = json.loads((tmp_path / "m/filterd_model.json").read_text())
    (tmp_path / "m/filterd_model.json").write_text(json.dumps({**meta, "emoji_as_words": False}))
    raw = OnnxClassifier(tmp_path / "m")  # as a raw-emoji model (v7) is served
    d, e = raw.predict(["thanks 🙏", "thanks folded hands"])
    assert d.scores != e.scores


def test_operator_can_override_how_the_model_reads_emoji(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """FILTERD_MODEL_EMOJI_AS_WORDS overrides the meta file both ways; unset, the model
    reads emoji as it was trained to (v14, v17: names; v7: [UNK])."""
    from filterd.config import load_settings
    from filterd.pipeline import Filter

    def scores(f: Filter, text: str) -> dict[str, float]:
        return f.check(text).scores

    monkeypatch.setenv("FILTERD_MODEL_EMOJI_AS_WORDS", "true")
    named = Filter(load_settings())
    assert named.classifier.emoji_as_words is True  # type: ignore[attr-defined]
    assert scores(named, "thanks 🙏") == scores(named, "thanks folded hands")
    monkeypatch.setenv("FILTERD_MODEL_EMOJI_AS_WORDS", "false")
    raw = Filter(load_settings())
    assert raw.classifier.emoji_as_words is False  # type: ignore[attr-defined]
    assert scores(raw, "thanks 🙏") != scores(raw, "thanks folded hands")
    monkeypatch.delenv("FILTERD_MODEL_EMOJI_AS_WORDS")
    assert Filter(load_settings()).classifier.emoji_as_words is True  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="MODEL_EMOJI_AS_WORDS"):
        load_settings(model_emoji_as_words="sometimes")


def test_airline_relabel_file_keeps_ids_and_labels_only() -> None:
    """The blind relabelling of the airline tweets is kept as ids and our labels; the
    tweets' text (CC BY-NC-SA, evaluation only) must never be committed with it."""
    from filterd.classify.evaluate import AIRLINE_RELABEL
    from filterd.types import CATEGORIES

    rows = json.loads(AIRLINE_RELABEL.read_text(encoding="utf-8"))["rows"]
    assert len(rows) == 800
    assert len({r["tweet_id"] for r in rows}) == 800
    for r in rows:
        assert set(r) == {"tweet_id", "row", "A", "A_flags", "A_sure", "B", "B_flags", "B_sure"}
        assert r["A"] in CATEGORIES and r["B"] in CATEGORIES
        assert r["tweet_id"].isdigit()


def test_airline_relabelled_set_scores_agreed_rows_and_checks_ids(tmp_path: Path) -> None:
    from filterd.classify.evaluate import airline_relabelled_set
    from filterd.errors import DataError

    folder = tmp_path / "eval_only/airline_tweets"
    folder.mkdir(parents=True)
    (folder / "dev.csv").write_text(
        "tweet_id,airline_sentiment,negativereason,text\n"
        "11,neutral,,@Air when is the flight\n"
        "12,negative,Late Flight,@Air still waiting 3 hours\n"
        "13,negative,Bad Flight,@Air meh\n", encoding="utf-8")
    labels = tmp_path / "relabel.json"
    row = {"A_flags": [], "A_sure": True, "B_flags": [], "B_sure": True}
    labels.write_text(json.dumps({"rows": [
        {"tweet_id": "11", "row": 0, "A": "neutral", "B": "neutral", **row},
        {"tweet_id": "12", "row": 1, "A": "frustrated", "B": "frustrated", **row},
        {"tweet_id": "13", "row": 2, "A": "neutral", "B": "frustrated", **row},  # disagree
    ]}))
    texts, gold = airline_relabelled_set(tmp_path, labels)
    assert texts == ["@Air when is the flight", "@Air still waiting 3 hours"]
    assert gold == ["neutral", "frustrated"]
    labels.write_text(json.dumps({"rows": [
        {"tweet_id": "99", "row": 0, "A": "neutral", "B": "neutral", **row}]}))
    with pytest.raises(DataError, match="tweet 99 is not row 0"):
        airline_relabelled_set(tmp_path, labels)


def test_a_model_trained_without_handle_tokens_is_served_without_them(tmp_path: Path) -> None:
    """``drop_handles`` in the meta file (``filterd train``, on by default since v17) makes
    serving drop the ``@user``/``http`` tokens as training did; a model trained with them
    (``--no-drop-handles``, models up to v15, whose meta files lack the key) keeps them."""
    import json
    import shutil

    from filterd.classify.onnx import OnnxClassifier, default_model_dir

    texts = ["has failed me all day, should i blame @AmericanAir? http://t.co/x1",
             "has failed me all day, should i blame ?"]
    shipped = OnnxClassifier(default_model_dir())
    assert shipped.drop_handles is True  # the shipped v21 (as v17) was trained without them
    a, b = shipped.predict(texts)
    assert a.scores == b.scores
    shutil.copytree(default_model_dir(), tmp_path / "m")
    meta = json.loads((tmp_path / "m/filterd_model.json").read_text())
    (tmp_path / "m/filterd_model.json").write_text(
        json.dumps({k: v for k, v in meta.items() if k != "drop_handles"}))
    kept = OnnxClassifier(tmp_path / "m")  # an older meta file: the tokens stay
    assert kept.drop_handles is False
    c, d = kept.predict(texts)
    assert c.scores != d.scores


def test_int8_export_keeps_closer_to_fp32_than_one_scale_per_tensor(tmp_path: Path) -> None:
    """The export quantises with one scale per output channel (model card, Session 17):
    its logits stay nearer the fp32 model's than the per-tensor quantisation v21 shipped."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    from filterd.classify.model import FilterdModel, base_model_path, export_onnx, quantize_int8

    torch.manual_seed(0)
    model = FilterdModel.from_base(num_layers=2)
    export_onnx(model, tmp_path / "fp32.onnx")
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "shipped.onnx")
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "tensor.onnx"),
                     weight_type=QuantType.QInt8)
    tok = AutoTokenizer.from_pretrained(str(base_model_path()))
    texts = ["my bill went up again and nobody answers", "how do i change my tariff",
             "you are a useless idiot", "third outage this week, this is a joke"]
    errors = {}
    ref = None
    for name in ("fp32", "shipped", "tensor"):
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"),
                                    providers=["CPUExecutionProvider"])
        outs = []
        for t in texts:
            enc = tok([t], return_tensors="np")
            outs.append(sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                        "attention_mask": enc["attention_mask"].astype(
                                            np.int64)})[0])
        got = np.concatenate(outs)
        if ref is None:
            ref = got
        errors[name] = float(np.abs(got - ref).mean())
    assert errors["shipped"] < errors["tensor"], errors
