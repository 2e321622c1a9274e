"""Open-loop load generator: POST messages to filterd at a constant rate, honestly timed.

A closed-loop tool (wrk, or N clients each waiting for its answer) slows down when the
server does, and so never records the wait a real sender would have seen ("coordinated
omission"). Here request *i* is due at ``start + i / rate`` whatever happened before, and
its latency is measured from that due time, like wrk2 does. Runs in its own process
(``python benchmarks/loadgen.py URL TEXTS --rate 200 --seconds 20``) and prints one JSON
object: counts, errors by kind, latency percentiles (ms) after the warm-up, and with
``--window S`` the same per window of S seconds (the soak test's per-minute figures).

httpx on uvloop; at 200 requests/s it takes ~10-15% of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx


def percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    if len(ms) == 1:
        ms = ms * 2
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}


def bodies(texts: list[str], n: int, batch: int, tag: str) -> list[bytes]:
    """``n`` request bodies; every message a new id, spread over 5,000 conversations."""

    def msg(k: int) -> str:
        return (f'{{"conversation_id":"{tag}c{k % 5000}","message_id":"{tag}m{k}",'
                f'"channel":"chat","sender":{{"role":"customer","id":"u{k % 5000}"}},'
                f'"text":{texts[k % len(texts)]}}}')

    if batch <= 1:
        return [msg(i).encode() for i in range(n)]
    return [('{"messages":[' + ",".join(msg(i * batch + j) for j in range(batch)) + "]}")
            .encode() for i in range(n)]


async def run(url: str, texts: list[str], rate: float, seconds: float, batch: int,
              warmup: float, tag: str, timeout: float) -> list[tuple[float, float, str]]:
    """(due time from start, latency ms, outcome) for every request sent."""
    per_s = rate / batch  # requests per second
    n = int((seconds + warmup) * per_s)
    payloads = bodies(texts, n, batch, tag)
    path = "/v1/messages" if batch <= 1 else "/v1/messages:batch"
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    results: list[tuple[float, float, str]] = []
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        clock = time.perf_counter  # uvloop's loop.time() only ticks in milliseconds

        async def one(body: bytes, due: float) -> None:
            try:
                r = await client.post(path, content=body, headers=headers)
                outcome = "ok" if r.status_code == 200 else f"http_{r.status_code}"
                if outcome == "ok" and b'"degraded":true' in r.content:
                    outcome = "degraded"  # judged without the model: not a clean answer
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.TransportError as e:
                outcome = type(e).__name__
            results.append((due - start, (clock() - due) * 1000, outcome))

        start = clock() + 0.05
        tasks = []
        for i, body in enumerate(payloads):
            due = start + i / per_s
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, due)))
        await asyncio.gather(*tasks)
    return results


def summarize(rows: list[tuple[float, float, str]], warmup: float, seconds: float,
              batch: int, rate: float, window: float) -> dict[str, Any]:
    kept = [r for r in rows if r[0] >= warmup]
    ok = [lat for _, lat, o in kept if o == "ok"]
    errors: dict[str, int] = {}
    for _, _, o in kept:
        if o != "ok":
            errors[o] = errors.get(o, 0) + 1
    last_done = max((due + lat / 1000 for due, lat, _ in kept), default=warmup) - warmup
    out: dict[str, Any] = {
        "offered_messages_per_s": rate, "batch": batch, "seconds": seconds,
        "requests": len(kept), "ok": len(ok), "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "achieved_messages_per_s": round(len(ok) * batch / max(last_done, seconds), 1),
        **percentiles(ok),
    }
    if window > 0:
        out["windows"] = []
        for w in range(int(seconds // window + (seconds % window > 0))):
            lo, hi = warmup + w * window, warmup + (w + 1) * window
            part = [r for r in kept if lo <= r[0] < hi]
            lat = [x for _, x, o in part if o == "ok"]
            out["windows"].append({"window": w, "start_s": round(w * window, 1),
                                   "requests": len(part),
                                   "errors": sum(1 for *_, o in part if o != "ok"),
                                   **percentiles(lat)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("texts", help="file of JSON strings, one a line")
    ap.add_argument("--rate", type=float, default=200, help="messages per second offered")
    ap.add_argument("--seconds", type=float, default=20, help="measured seconds")
    ap.add_argument("--batch", type=int, default=1, help="messages per request (:batch)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds at the rate, not counted")
    ap.add_argument("--window", type=float, default=0, help="also report per window (s)")
    ap.add_argument("--tag", default="o", help="id prefix, unique per run")
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    texts = [x for x in Path(a.texts).read_text(encoding="utf-8").splitlines() if x]
    try:
        from uvloop import new_event_loop
    except ImportError:  # plain asyncio is fine at these rates
        from asyncio import new_event_loop
    t0 = time.monotonic()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        rows = runner.run(run(a.url, texts, a.rate, a.seconds, a.batch, a.warmup, a.tag,
                              a.timeout))
    result = summarize(rows, a.warmup, a.seconds, a.batch, a.rate, a.window)
    result["wall_seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
