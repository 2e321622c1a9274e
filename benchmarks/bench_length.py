"""Cost per message by length: 10, 100, 1,000 and 8,000 characters.

Messages of each length are cut (at a word boundary, padded with the next message) from
the same realistic corpus, so only the length changes. Measured in one run:

- in-process ``Filter.judge_timed``, one message at a time, after warm-up: p50 of the
  whole verdict and of its stages (detectors, model, decision + masking), one core;
- through the service (``filterd serve``, 1 worker): wrk with 1 connection (the latency of
  one message alone) and 8 connections (throughput), and server CPU per message.

Every figure has its ratio against the 10-character messages. The model reads at most
FILTERD_MODEL_MAX_CHARS (2,000) characters and then at most 64 tokens, so its cost stops
growing after a few hundred characters; detectors and masking read the whole text.

Run: ``python benchmarks/bench_length.py`` -> table, ``benchmarks/results/length.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from corpus import short_messages  # noqa: E402
from service_util import RESULTS, Server, machine, write_texts, wrk  # noqa: E402

LENGTHS = (10, 100, 1_000, 8_000)


def of_length(n: int, count: int, pool: list[str]) -> list[str]:
    """``count`` messages of exactly ``n`` characters, built from consecutive corpus texts."""
    out, i = [], 0
    for _ in range(count):
        text = ""
        while len(text) < n:
            text = (text + " " + pool[i % len(pool)]).strip()
            i += 1
        cut = text[:n]
        if " " in cut[n // 2 :] and len(text) > n:  # end on a word, then pad to length
            cut = cut[: cut.rindex(" ")]
            cut = (cut + " " + "." * n)[:n]
        out.append(cut)
    return out


def in_process(texts: list[str], warmup: int = 20) -> dict[str, float]:
    from filterd.route.conversation import ConversationState

    filt = _filter()
    state = ConversationState()
    for t in texts[:warmup]:
        filt.judge_timed([t], [None], [state])
    total: list[float] = []
    stages: dict[str, list[float]] = {"detect": [], "classify": [], "decide": []}
    for t in texts:
        t0 = time.perf_counter()
        _, st = filt.judge_timed([t], [None], [state])
        total.append((time.perf_counter() - t0) * 1000)
        for k in stages:
            stages[k].append(st[k] * 1000)
    q = statistics.quantiles(total, n=100)
    return {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3),
            **{f"{k}_p50_ms": round(statistics.median(v), 3) for k, v in stages.items()}}


_FILTER: Any = None


def _filter() -> Any:
    global _FILTER
    if _FILTER is None:
        from filterd.config import load_settings
        from filterd.pipeline import Filter

        _FILTER = Filter(load_settings(model_timeout_ms=0))  # no time budget: pure cost
    return _FILTER


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200, help="per length, in-process")
    ap.add_argument("--seconds", type=float, default=6, help="per service run")
    ap.add_argument("--out", default=str(RESULTS / "length.json"))
    a = ap.parse_args()
    where = machine()
    pool = [t for t in short_messages(3000) if t.isascii()]  # 8,000 chars <= 8,192 bytes
    sets = {n: of_length(n, a.messages, pool) for n in LENGTHS}
    inproc = {n: in_process(sets[n]) for n in LENGTHS}
    service: dict[int, dict[str, Any]] = {}
    tmp = Path(tempfile.gettempdir())
    with Server(workers=1) as srv:
        wrk(srv.url, write_texts(tmp / "filterd-len-warm.jsonl", pool[:500]), connections=4,
            seconds=2, tag="warm")
        for n in LENGTHS:
            f = write_texts(tmp / f"filterd-len-{n}.jsonl", sets[n])
            cpu0 = srv.cpu_seconds()
            one = wrk(srv.url, f, connections=1, seconds=a.seconds, tag=f"l{n}a")
            many = wrk(srv.url, f, connections=8, seconds=a.seconds, tag=f"l{n}b")
            msgs = one["requests"] + many["requests"]
            service[n] = {"alone_p50_ms": one["p50_ms"], "alone_p99_ms": one["p99_ms"],
                          "msg_per_s_8_conn": many["messages_per_s"],
                          "errors": one["errors"] + many["errors"],
                          "server_cpu_ms_per_msg": round(
                              1000 * (srv.cpu_seconds() - cpu0) / max(1, msgs), 3)}
    b_in, b_sv = inproc[LENGTHS[0]], service[LENGTHS[0]]
    for n in LENGTHS:
        inproc[n]["x_vs_10_chars"] = round(inproc[n]["p50_ms"] / b_in["p50_ms"], 2)
        service[n]["cpu_x_vs_10_chars"] = round(
            service[n]["server_cpu_ms_per_msg"] / b_sv["server_cpu_ms_per_msg"], 2)
        service[n]["throughput_x_vs_10_chars"] = round(
            service[n]["msg_per_s_8_conn"] / b_sv["msg_per_s_8_conn"], 2)
    print(f"{'chars':>6} | {'in-process p50 ms':>17}{'x':>6}{'detect':>8}{'model':>8}"
          f"{'decide':>8} | {'service alone p50':>17}{'cpu ms/msg':>11}{'x':>6}{'msg/s':>7}")
    for n in LENGTHS:
        i, s = inproc[n], service[n]
        print(f"{n:>6} | {i['p50_ms']:>17.2f}{i['x_vs_10_chars']:>6.1f}"
              f"{i['detect_p50_ms']:>8.2f}{i['classify_p50_ms']:>8.2f}{i['decide_p50_ms']:>8.2f}"
              f" | {s['alone_p50_ms']:>17.2f}{s['server_cpu_ms_per_msg']:>11.2f}"
              f"{s['cpu_x_vs_10_chars']:>6.1f}{s['msg_per_s_8_conn']:>7.0f}")
    where["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {"run": where, "baseline": "10-character messages", "lengths": LENGTHS,
              "in_process": {str(k): v for k, v in inproc.items()},
              "service_1_worker": {str(k): v for k, v in service.items()}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
