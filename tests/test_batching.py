"""Micro-batching (filterd/classify/batching.py): shared model calls, same answers.

Concurrency is made deterministic where it matters: with ``max_texts`` equal to the number of
texts sent and a long ``wait_ms``, the model thread takes them all as one batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from filterd.classify.base import Classifier
from filterd.classify.batching import BatchingClassifier, length_runs
from filterd.classify.fake import KeywordClassifier
from filterd.errors import ModelError, OverloadedError
from filterd.types import CATEGORIES, MODEL_FLAGS, ModelOutput


def _out(value: float) -> ModelOutput:
    return ModelOutput(scores=dict.fromkeys(CATEGORIES, 1 / 3),
                       flag_scores=dict.fromkeys(MODEL_FLAGS, 0.0), intensity=value)


class Echo:
    """Answers each text's number (its last word) as the intensity; records every call."""

    def __init__(self, gate: threading.Event | None = None, fail: Exception | None = None):
        self.calls: list[list[str]] = []
        self.gate = gate
        self.fail = fail
        self.entered = threading.Event()

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        self.calls.append(list(texts))
        if self.fail is not None:
            raise self.fail
        return [_out(float(t.split()[-1])) for t in texts]


def _text(n: int) -> str:
    return "word " * (n % 7) * (1 + n % 5) + f"msg {n}"  # varied lengths, number last


def _callers(n_callers: int, per_caller: int) -> list[list[str]]:
    return [[_text(c * per_caller + k) for k in range(per_caller)] for c in range(n_callers)]


def test_concurrent_callers_get_their_own_answers_in_order() -> None:
    inner = Echo()
    groups = _callers(8, 3)
    with BatchingClassifier(inner, max_texts=24, wait_ms=5_000) as clf, \
            ThreadPoolExecutor(8) as pool:
        results = list(pool.map(clf.predict, groups))
    for texts, outs in zip(groups, results, strict=True):
        assert [o.intensity for o in outs] == [float(t.split()[-1]) for t in texts]
    assert clf.stats.batches == 1 and clf.stats.calls == 8 and clf.stats.texts == 24
    # every text went to the model exactly once, in runs of ascending length
    sent = [t for call in inner.calls for t in call]
    assert sorted(sent) == sorted(t for g in groups for t in g)
    for call in inner.calls:
        assert [len(t) for t in call] == sorted(len(t) for t in call)


def test_mixed_callers_match_unbatched_keyword_model() -> None:
    texts = ["you idiot", "still waiting, 3 hours", "hello there", "fuck you", "ok",
             "this is ridiculous, again", "thanks", "you stupid moron"] * 5
    plain = KeywordClassifier().predict(texts)
    groups = [texts[i : i + n] for i, n in zip(range(0, 40, 5), [1, 2, 3, 4, 5, 6, 7, 8],
                                              strict=False)]
    with BatchingClassifier(KeywordClassifier(), max_texts=8, wait_ms=2) as clf, \
            ThreadPoolExecutor(8) as pool:
        results = list(pool.map(clf.predict, groups))
    got = [o for outs in results for o in outs]
    want = [o for g, i in zip(groups, range(0, 40, 5), strict=True)
            for o in plain[i : i + len(g)]]
    assert got == want


class Recording:
    """The real model, remembering what each call answered for each text."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.answers: dict[str, ModelOutput] = {}

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        outs = self.inner.predict(texts)
        self.answers.update(zip(texts, outs, strict=True))
        return outs


def test_shipped_model_batched_answers_are_the_model_calls_answers() -> None:
    """With the real model, each caller gets exactly what the shared call computed for its
    texts, and the decisions agree with one text per call. (The numbers themselves move a
    little with a call's company: int8 dynamic quantization scales per call; what that does
    to macro-F1 is measured in benchmarks/bench_batch_quality.py.)"""
    from filterd.classify.onnx import OnnxClassifier

    model = OnnxClassifier()
    texts = ["you are a useless idiot", "my bill is wrong again, third month in a row!!",
             "hi, can I change my delivery address?", "I will find you and hurt you",
             "ok thanks", "this is the worst service I have ever had, absolutely unacceptable",
             "f*ck this", "Can you send the invoice to my e-mail again, it never arrived."]
    alone = [model.predict([t])[0] for t in texts]
    groups = [texts[:1], texts[1:4], texts[4:5], texts[5:]]
    rec = Recording(model)
    with BatchingClassifier(rec, max_texts=len(texts), wait_ms=5_000) as clf, \
            ThreadPoolExecutor(4) as pool:
        results = list(pool.map(clf.predict, groups))
    assert clf.stats.batches == 1 and clf.stats.inner_calls >= 2  # lengths differ a lot
    for group, outs in zip(groups, results, strict=True):
        assert outs == [rec.answers[t] for t in group]
    batched = [o for outs in results for o in outs]
    for a, b in zip(alone, batched, strict=True):
        assert max(a.scores, key=a.scores.__getitem__) == max(b.scores, key=b.scores.__getitem__)


def test_onnx_classifier_pads_per_length_run_and_keeps_order() -> None:
    """One call of mixed lengths is run in groups of similar length; answers stay in the
    caller's order and agree with the single-run padding (the model card's condition)."""
    from filterd.classify.onnx import OnnxClassifier

    texts = [("this is a long and winding complaint about my bill " * n).strip() or "hi"
             for n in (0, 3, 1, 6, 0, 2, 5, 1, 4, 0)]
    runs = OnnxClassifier(max_padding=1.3, max_run=4)
    padded = OnnxClassifier(max_padding=None)
    got, want = runs.predict(texts), padded.predict(texts)
    backwards = runs.predict(texts[::-1])[::-1]
    for a, b, c in zip(got, want, backwards, strict=True):
        for cat in CATEGORIES:
            assert abs(a.scores[cat] - b.scores[cat]) < 0.05
            assert abs(a.scores[cat] - c.scores[cat]) < 0.02
        assert abs(a.intensity - b.intensity) < 0.05
    assert [round(o.intensity, 6) for o in runs.predict(texts[:1])] == [
        round(got[0].intensity, 6)]


def test_model_error_reaches_every_caller_of_the_batch() -> None:
    boom = ModelError("onnx fell over")
    inner = Echo(fail=boom)
    groups = _callers(4, 2)
    with BatchingClassifier(inner, max_texts=8, wait_ms=5_000) as clf, \
            ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(clf.predict, g) for g in groups]
        errors = [f.exception(timeout=10) for f in futures]
        assert all(e is boom for e in errors)
        # the model thread survives a failing batch
        inner.fail = None
        assert [o.intensity for o in clf.predict(["msg 7"])] == [7.0]


def test_full_queue_sheds_load_with_overloaded_error() -> None:
    gate = threading.Event()
    inner = Echo(gate=gate)
    clf = BatchingClassifier(inner, max_texts=1, wait_ms=0, queue_texts=4)
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(clf.predict, ["msg 1"])  # the model thread blocks on it
        assert inner.entered.wait(5)
        queued = pool.submit(clf.predict, ["msg 2", "msg 3", "msg 4"])  # 3 of 4 queued
        for _ in range(200):
            if clf._pending == 3:
                break
            time.sleep(0.01)
        with pytest.raises(OverloadedError) as err:
            clf.predict(["msg 5", "msg 6"])
        assert err.value.retry_after > 0 and "FILTERD_BATCH_QUEUE_TEXTS" in str(err.value)
        assert clf.stats.overloaded == 1
        gate.set()
        assert [o.intensity for o in running.result(5)] == [1.0]
        assert [o.intensity for o in queued.result(5)] == [2.0, 3.0, 4.0]
    clf.close()


def test_a_call_larger_than_the_queue_is_taken_when_the_queue_is_empty() -> None:
    with BatchingClassifier(Echo(), max_texts=4, queue_texts=4) as clf:
        texts = [_text(n) for n in range(10)]
        assert [o.intensity for o in clf.predict(texts)] == [float(n) for n in range(10)]


def test_close_finishes_queued_work_joins_the_thread_and_refuses_new_calls() -> None:
    before = {t.ident for t in threading.enumerate()}
    gate = threading.Event()
    echo = Echo(gate=gate)
    clf = BatchingClassifier(echo, max_texts=1, wait_ms=0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(clf.predict, ["msg 1"])
        assert echo.entered.wait(10)  # the model thread holds "msg 1" (at the gate)
        second = pool.submit(clf.predict, ["msg 2"])
        # "msg 2" queued behind it before close() starts (on a loaded machine this can
        # take a while; closing earlier would rightly refuse it)
        deadline = time.monotonic() + 20
        while clf._pending != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert clf._pending == 1
        closer = threading.Thread(target=clf.close)
        closer.start()
        gate.set()
        closer.join(10)
        assert [o.intensity for o in first.result(5)] == [1.0]
        assert [o.intensity for o in second.result(5)] == [2.0]  # drained, not dropped
    assert not clf.running
    assert {t.ident for t in threading.enumerate()} <= before
    with pytest.raises(ModelError, match="shut down"):
        clf.predict(["msg 3"])


def test_length_runs_bound_padding_and_size() -> None:
    texts = ["a" * 10] * 5 + ["b" * 200] * 3 + ["c" * 40] * 70
    runs = length_runs(texts, max_texts=32, max_padding=1.3)
    assert sorted(i for r in runs for i in r) == list(range(len(texts)))
    assert all(len(r) <= 32 for r in runs)
    for r in runs:  # a 200-character text never shares a run with 10-character ones
        lengths = {len(texts[i]) for i in r}
        assert not ({10, 200} <= lengths)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_texts"):
        BatchingClassifier(Echo(), max_texts=0)


def test_service_batches_and_its_lifespan_stops_the_model_thread(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from filterd.api.app import create_app
    from filterd.config import load_settings

    settings = load_settings(database_url=f"sqlite:///{tmp_path}/b.db", delivery_worker=False,
                             micro_batch=True, batch_wait_ms=1)
    app = create_app(settings)
    clf = app.state.services.filter.classifier
    assert isinstance(clf, BatchingClassifier)
    msg = {"conversation_id": "c1", "message_id": "m1", "channel": "chat",
           "sender": {"role": "customer", "id": "u1"}, "text": "you useless idiot"}
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        r = client.post("/v1/messages", json=msg)
        assert r.status_code == 200, r.text
        assert r.json()["category"] == "abusive" and not r.json()["degraded"]
        assert clf.running and clf.stats.texts >= 2
    assert not clf.running
    assert not [t for t in threading.enumerate() if t.name == "filterd-batcher"]


def test_parallel_runs_give_each_text_exactly_its_alone_answer() -> None:
    """``parallel``: a call's texts are scored on several threads at once; every text still
    runs alone, so the answers are bit-identical to one thread and stay in the caller's
    order, whatever the lengths and however many threads share the call."""
    from filterd.classify.onnx import OnnxClassifier

    texts = [("my bill is wrong again and nobody answers " * n).strip() or "hi there"
             for n in (0, 5, 1, 3, 0, 7, 2, 1, 4, 0, 6)]
    one = OnnxClassifier(parallel=1)
    want = one.predict(texts)
    for k in (2, 3, 16):
        many = OnnxClassifier(parallel=k)
        try:
            assert many.predict(texts) == want
            assert many.predict(texts[::-1]) == want[::-1]
            assert many.predict(texts[:1]) == want[:1]  # one run: no pool needed
        finally:
            many.close()
    assert many._pool is None
