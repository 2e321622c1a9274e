"""The service under load: ``filterd serve`` on localhost, driven from other processes.

For each configuration -- 1 and 2 workers, micro-batching off and on, 1 worker with 2
ONNX Runtime threads instead of 1, group commit of single messages (``FILTERD_COALESCE``)
off and on -- a fresh ``filterd serve`` (SQLite in a temporary folder,
the shipped model, default settings otherwise) is started and, after a warm-up:

- **throughput**: wrk (closed loop, Debian's package; ``apt-get install -y wrk``) keeps
  ``c`` requests in flight for ``--seconds``, for each ``c`` in ``--connections``; the best
  run with no error is the sustained figure. Single messages, then ``:batch`` of 20;
- **latency at a steady rate**: ``loadgen.py`` (open loop, timed from each request's due
  time) offers 200 messages/s for ``--seconds``: p50/p95/p99. Single, then ``:batch`` of 20
  (10 requests/s of 20 messages);
- **server CPU per message** (user+system seconds of the worker processes / messages): the
  figure least moved by other load on a shared machine;
- peak RSS of each worker (VmHWM) after all that.

Ratios in the same run: micro-batching on against off (same workers), 2 workers against 1
(same batching), 2 ONNX threads against 1, coalescing on against off (same workers). A
message judged without the model (``degraded``: the model was busy or late) counts as an
error. Configurations run in turn, ``--repeat`` times, and each figure is the median over
repeats, so a burst of other load on the machine does not land on one side only; a pure-
Python loop timed at start and end says how loaded the machine was (``speed_index``).

Run: ``python benchmarks/bench_service.py`` (about 8 minutes) -> table,
``benchmarks/results/service.json``. ``--quick`` for a 1-minute smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from corpus import short_messages  # noqa: E402
from service_util import (  # noqa: E402
    RESULTS,
    Server,
    env_with_repo,
    loadgen,
    machine,
    write_texts,
    wrk,
)

TARGETS = {"sustained_messages_per_s": 500, "p99_ms_at_200_per_s": 30}
DEFAULT_CONFIGS = ["1:off", "1:off:1:co", "1:off:1:cs", "1:on", "2:off", "2:off:1:co", "2:on",
                   "1:off:2"]


def run_config(cfg: Config, args: argparse.Namespace, texts: Path, tag: str) -> dict[str, Any]:
    env = {"FILTERD_MICRO_BATCH": "true" if cfg.micro else "false",
           "FILTERD_BATCH_WAIT_MS": str(args.batch_wait_ms),
           "FILTERD_MODEL_THREADS": str(cfg.threads),
           "FILTERD_MODEL_PARALLEL": str(cfg.parallel),
           "FILTERD_GC_FREEZE": "true" if cfg.freeze else "false",
           # group commit: "co" awaits on the event loop, "cs" waits on the thread pool
           "FILTERD_COALESCE": "true" if cfg.coalesce else "false",
           "FILTERD_COALESCE_AWAIT": "true" if cfg.coalesce == "co" else "false",
           "FILTERD_COALESCE_WAIT_MS": str(args.coalesce_wait_ms)}
    out: dict[str, Any] = {"workers": cfg.workers, "micro_batch": cfg.micro,
                           "onnx_threads": cfg.threads, "coalesce": cfg.coalesce,
                           "model_parallel": cfg.parallel, "gc_freeze": cfg.freeze,
                           "code": cfg.code or "this checkout"}
    if cfg.code:  # its package first on the path; its own models/ come with it
        env["PYTHONPATH"] = os.pathsep.join([cfg.code, env_with_repo()["PYTHONPATH"]])
    with Server(workers=cfg.workers, env=env) as srv:
        out["ready_seconds"] = round(srv.ready_seconds or 0, 2)
        wrk(srv.url, texts, connections=8, seconds=args.warmup, tag=f"{tag}w")  # warm-up

        def measured(fn: Any, **kw: Any) -> dict[str, Any]:
            cpu0 = srv.cpu_seconds()
            r: dict[str, Any] = fn(srv.url, texts, **kw)
            if "ok" in r:  # loadgen: the measured part only; its warm-up ran at the same rate
                done = r["requests"] * r["batch"] * (1 + args.lg_warmup / args.seconds)
            else:
                done = r["requests"] * r["batch"]
            r["server_cpu_ms_per_message"] = round(
                1000 * (srv.cpu_seconds() - cpu0) / max(1, done), 3)
            return r

        out["throughput_single"] = [
            measured(wrk, connections=c, seconds=args.seconds, tag=f"{tag}s{c}")
            for c in args.connections]
        out["throughput_batch20"] = [
            measured(wrk, connections=c, seconds=args.seconds, batch=20, tag=f"{tag}b{c}")
            for c in args.batch_connections]
        out["open_loop_200_single"] = measured(
            loadgen, rate=200, seconds=args.seconds, warmup=args.lg_warmup, tag=f"{tag}o")
        out["open_loop_200_batch20"] = measured(
            loadgen, rate=200, seconds=args.seconds, batch=20, warmup=args.lg_warmup,
            tag=f"{tag}ob")
        out["peak_rss_mb"] = srv.peak_rss_mb()
    return out


@dataclass(frozen=True)
class Config:
    workers: int
    micro: bool
    threads: int = 1
    coalesce: str = ""  # group commit: "" off, "co" awaited on the loop, "cs" thread pool
    parallel: int = 0  # FILTERD_MODEL_PARALLEL (0: the service's default, one per CPU)
    freeze: bool = True  # FILTERD_GC_FREEZE: start-up heap kept out of full collections
    code: str = ""  # another checkout of filterd to run instead (a baseline commit)

    @property
    def name(self) -> str:
        plural = "s" if self.workers > 1 else ""
        extra = f", ONNX {self.threads} threads" if self.threads != 1 else ""
        extra += {"": "", "co": ", coalescing", "cs": ", coalescing (sync wait)"}[self.coalesce]
        extra += f", model runs on {self.parallel} thread(s)" if self.parallel else ""
        extra += "" if self.freeze else ", no gc.freeze"
        extra += f", code of {self.code}" if self.code else ""
        return (f"{self.workers} worker{plural}, micro-batching "
                f"{'on' if self.micro else 'off'}{extra}")

    @classmethod
    def parse(cls, text: str) -> Config:
        """``WORKERS:on|off[:THREADS[:co|cs|-[:PARALLEL[:gc|nogc]]]][@DIR]``, e.g. ``2:off``,
        ``1:off:2``, ``1:off:1:co``, ``1:off:1:co:1`` (co: coalescing awaited on the event
        loop, cs: waited for on the thread pool, -: off; PARALLEL: FILTERD_MODEL_PARALLEL,
        default 0, the service's own; nogc: FILTERD_GC_FREEZE=false; @DIR: run the filterd
        in checkout DIR, e.g. ``git worktree add /tmp/base <commit>``, as a baseline)."""
        text, _, code = text.partition("@")
        parts = text.split(":")
        return cls(int(parts[0]), parts[1] == "on", int(parts[2]) if len(parts) > 2 else 1,
                   parts[3].strip("-") if len(parts) > 3 else "",
                   int(parts[4]) if len(parts) > 4 else 0,
                   not (len(parts) > 5 and parts[5] == "nogc"), code)


def speed_index() -> float:
    """Seconds for a fixed pure-Python loop: how fast (how loaded) the machine was."""
    t0 = time.perf_counter()
    x = 0
    for i in range(3_000_000):
        x += i
    return round(time.perf_counter() - t0, 3)


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The sustained figure: the best run without errors or degraded verdicts (or the best
    run, flagged)."""
    clean = [r for r in runs if r["errors_or_degraded"] == 0]
    pick = max(clean or runs, key=lambda r: r["messages_per_s"])
    return {**pick, "had_errors": not clean}


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repeats of each headline figure of one configuration."""
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    s_best = [best(r["throughput_single"]) for r in reps]
    b_best = [best(r["throughput_batch20"]) for r in reps]
    o1 = [r["open_loop_200_single"] for r in reps]
    ob = [r["open_loop_200_batch20"] for r in reps]
    return {
        "sustained_single_msg_per_s": med([b["messages_per_s"] for b in s_best]),
        "sustained_single_errors": sum(b["errors_or_degraded"] for b in s_best),
        "sustained_single_connections": [b["connections"] for b in s_best],
        "sustained_batch20_msg_per_s": med([b["messages_per_s"] for b in b_best]),
        "sustained_batch20_errors": sum(b["errors_or_degraded"] for b in b_best),
        "cpu_ms_per_msg_single": med([b["server_cpu_ms_per_message"] for b in s_best]),
        "cpu_ms_per_msg_batch20": med([b["server_cpu_ms_per_message"] for b in b_best]),
        "at200_single_p50_ms": med([o["p50_ms"] for o in o1]),
        "at200_single_p95_ms": med([o["p95_ms"] for o in o1]),
        "at200_single_p99_ms": med([o["p99_ms"] for o in o1]),
        "at200_single_errors": sum(o["errors"] for o in o1),
        "at200_batch20_p50_ms": med([o["p50_ms"] for o in ob]),
        "at200_batch20_p95_ms": med([o["p95_ms"] for o in ob]),
        "at200_batch20_p99_ms": med([o["p99_ms"] for o in ob]),
        "at200_batch20_errors": sum(o["errors"] for o in ob),
        "peak_rss_mb_per_worker": max(max(r["peak_rss_mb"]) for r in reps),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


_MEASURES = {"sustained_single": "sustained_single_msg_per_s",
             "sustained_batch20": "sustained_batch20_msg_per_s",
             "cpu_per_msg_single": "cpu_ms_per_msg_single",
             "p50_at_200_single": "at200_single_p50_ms",
             "p99_at_200_single": "at200_single_p99_ms"}


def compare(configs: list[Config], summary: dict[str, dict[str, Any]]
            ) -> dict[str, dict[str, float]]:
    """Ratios against a baseline in the same run: each configuration against the same one
    with a single thing changed back (micro-batching off, 1 worker, group commit off, 1
    ONNX thread, this checkout's code), where that baseline was run too."""
    out: dict[str, dict[str, float]] = {}

    def add(label: str, cfg: Config, base: Config, measures: tuple[str, ...]) -> None:
        a, b = summary.get(cfg.name), summary.get(base.name)
        if a and b and cfg != base:
            out[label] = {m: ratio(a[_MEASURES[m]], b[_MEASURES[m]]) for m in measures}

    for c in configs:
        if c.micro:
            add(f"{c.name} / micro-batching off", c, replace(c, micro=False),
                ("sustained_single", "sustained_batch20", "cpu_per_msg_single",
                 "p99_at_200_single"))
        if c.workers == 2:
            add(f"{c.name} / 1 worker", c, replace(c, workers=1),
                ("sustained_single", "sustained_batch20"))
        if c.coalesce:
            add(f"{c.name} / coalescing off", c, replace(c, coalesce=""),
                ("sustained_single", "cpu_per_msg_single", "p50_at_200_single",
                 "p99_at_200_single"))
        if c.threads != 1:
            add(f"{c.name} / 1 thread", c, replace(c, threads=1),
                ("sustained_single", "p50_at_200_single"))
        if c.code:
            add(f"this checkout / {c.name}", replace(c, code=""), c,
                ("sustained_single", "sustained_batch20", "cpu_per_msg_single",
                 "p99_at_200_single"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="per measured run")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--lg-warmup", type=float, default=2, help="open-loop warm-up seconds")
    ap.add_argument("--connections", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--batch-connections", type=int, nargs="+", default=[2])
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                    help="WORKERS:on|off[:ONNX_THREADS] (micro-batching on/off)")
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--coalesce-wait-ms", type=float, default=0.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    ap.add_argument("--out", default=str(RESULTS / "service.json"))
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.lg_warmup, args.connections = 3, 1, 1, [8]
    configs = [Config.parse(c) for c in args.configs]
    where = machine()
    where["speed_index_s_at_start"] = speed_index()
    texts = write_texts(Path(os.environ.get("TMPDIR", "/tmp")) / "filterd-bench-texts.jsonl",
                        short_messages(2000))
    raw: dict[str, list[dict[str, Any]]] = {}
    t0 = time.monotonic()
    for rep in range(args.repeat):
        for n, cfg in enumerate(configs):
            print(f"[{time.monotonic() - t0:5.0f}s] {cfg.name} (repeat {rep + 1})",
                  file=sys.stderr)
            raw.setdefault(cfg.name, []).append(run_config(cfg, args, texts, f"r{rep}c{n}"))
    summary = {name: summarize(reps) for name, reps in raw.items()}

    ratios = compare(configs, summary)

    hdr = (f"{'configuration':<46}{'msg/s':>8}{'batch20':>9}{'cpu ms/msg':>11}"
           f"{'p50':>7}{'p95':>7}{'p99':>7}{'b20 p99':>9}{'RSS MB':>8}{'err':>5}")
    print("sustained msg/s (wrk, no errors); latency ms at 200 msg/s offered (open loop)")
    print(hdr)
    print(f"(machine speed index: {where['speed_index_s_at_start']} s at start; lower is faster)")
    for name, s in summary.items():
        errs = (s["sustained_single_errors"] + s["sustained_batch20_errors"]
                + s["at200_single_errors"] + s["at200_batch20_errors"])
        print(f"{name:<46}{s['sustained_single_msg_per_s']:>8.0f}"
              f"{s['sustained_batch20_msg_per_s']:>9.0f}{s['cpu_ms_per_msg_single']:>11.2f}"
              f"{s['at200_single_p50_ms']:>7.1f}{s['at200_single_p95_ms']:>7.1f}"
              f"{s['at200_single_p99_ms']:>7.1f}{s['at200_batch20_p99_ms']:>9.1f}"
              f"{s['peak_rss_mb_per_worker']:>8.0f}{errs:>5}")
    for name, r in ratios.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in r.items()))
    where["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    where["speed_index_s_at_end"] = speed_index()
    where["seconds"] = round(time.monotonic() - t0)
    report = {"run": where, "args": {k: v for k, v in vars(args).items() if k != "out"},
              "targets": TARGETS, "summary": summary, "ratios": ratios, "raw": raw}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
