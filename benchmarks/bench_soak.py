"""Soak: ``filterd serve`` at a steady rate for minutes; memory must stay flat, errors nil.

One ``filterd serve`` (SQLite in a temporary folder, the shipped model, the default
settings) takes ``--rate`` messages/s, open loop (``loadgen.py``: each request timed from
its due time), for ``--minutes``. Every ``--sample`` seconds the RSS of each worker is read
from /proc. Reported: errors by kind, latency per minute (p50/p95/p99), RSS samples, and
the RSS slope (MB per minute, least squares over the samples after the first minute, when
caches, the model's arenas and the SQLite page cache are warm). The verdict is "flat" when
the slope of every worker stays under ``--flat-mb-per-min``.

Run: ``python benchmarks/bench_soak.py --minutes 10`` (issue 6's soak: 10 minutes at
200 messages/s) -> table, ``benchmarks/results/soak.json``. ``--minutes 1`` proves it works.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from corpus import short_messages  # noqa: E402
from service_util import (  # noqa: E402
    RESULTS,
    Server,
    env_with_repo,
    loadgen_command,
    machine,
    status_kb,
    write_texts,
)


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return 60 * sxy / sxx if sxx else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=200, help="messages per second offered")
    ap.add_argument("--batch", type=int, default=1, help="messages per request (:batch)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    ap.add_argument("--flat-mb-per-min", type=float, default=1.0)
    ap.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra FILTERD_* settings for the server, e.g. FILTERD_MICRO_BATCH=true")
    ap.add_argument("--out", default=str(RESULTS / "soak.json"))
    a = ap.parse_args()
    where = machine()
    seconds = a.minutes * 60
    texts = write_texts(Path(os.environ.get("TMPDIR", "/tmp")) / "filterd-soak-texts.jsonl",
                        short_messages(5000))
    env = dict(kv.split("=", 1) for kv in a.env)
    samples: dict[int, list[tuple[float, float]]] = {}
    with Server(workers=a.workers, env=env) as srv:
        pids = srv.worker_pids()
        cmd = loadgen_command(srv.url, texts, rate=a.rate, seconds=seconds, batch=a.batch,
                              warmup=2, window=60 if a.minutes >= 2 else max(10.0, seconds / 4),
                              tag="soak")
        t0 = time.monotonic()
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env_with_repo())
        while gen.poll() is None:
            now = time.monotonic() - t0
            for pid in pids:
                mb = round(status_kb(pid, "VmRSS") / 1024, 1)
                samples.setdefault(pid, []).append((round(now, 1), mb))
            time.sleep(a.sample)
        out, err = gen.communicate()
        if gen.returncode != 0:
            raise SystemExit(f"loadgen failed:\n{out}\n{err}")
        load: dict[str, Any] = json.loads(out)
        peak = srv.peak_rss_mb()
        server_alive = srv.proc is not None and srv.proc.poll() is None
    warm = 60.0 if a.minutes >= 2 else seconds / 3  # skip the warm-up part for the slope
    slopes = {pid: round(slope_per_minute([s for s in ss if s[0] >= warm]), 3)
              for pid, ss in samples.items()}
    flat = all(abs(v) < a.flat_mb_per_min for v in slopes.values())
    print(f"{a.minutes:g} min at {a.rate:g} msg/s offered ({a.workers} worker(s)): "
          f"{load['ok']} ok, {load['errors']} errors {load['errors_by_kind'] or ''}; "
          f"achieved {load['achieved_messages_per_s']} msg/s")
    print(f"{'window':>8}{'requests':>10}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for w in load.get("windows", []):
        print(f"{w['start_s']:>7.0f}s{w['requests']:>10}{w['errors']:>8}{w['p50_ms']:>9.1f}"
              f"{w['p95_ms']:>9.1f}{w['p99_ms']:>9.1f}")
    print(f"{'all':>8}{load['requests']:>10}{load['errors']:>8}{load['p50_ms']:>9.1f}"
          f"{load['p95_ms']:>9.1f}{load['p99_ms']:>9.1f}")
    for pid, ss in samples.items():
        print(f"worker {pid}: RSS {ss[0][1]:.0f} -> {ss[-1][1]:.0f} MB, peak {max(peak):.0f} MB, "
              f"slope after warm-up {slopes[pid]:+.2f} MB/min")
    print("memory flat" if flat else "MEMORY GROWS", "| errors:", load["errors"],
          "| server still up:", server_alive)
    where["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {"run": where, "args": vars(a), "load": load, "peak_rss_mb": peak,
              "rss_samples": {str(k): v for k, v in samples.items()},
              "rss_slope_mb_per_min": {str(k): v for k, v in slopes.items()},
              "memory_flat": flat, "errors": load["errors"], "server_alive": server_alive}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    if not flat or load["errors"] or not server_alive:
        sys.exit(1)


if __name__ == "__main__":
    main()
