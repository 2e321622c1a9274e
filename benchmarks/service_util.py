"""Shared by the service benchmarks: a real ``filterd serve`` process, its workers, wrk.

``Server`` starts ``python -m filterd.cli serve`` on a free port with SQLite in a temporary
folder and the shipped model (this checkout's package, whatever the environment's install
points at), waits for ``/readyz`` and stops it with SIGINT, as an operator would.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
WRK_SCRIPT = BENCH / "wrk_messages.lua"
WRK_HELP = "wrk is not installed: `apt-get install -y wrk` (Debian's package, 4.1)."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_with_repo(extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def machine() -> dict[str, Any]:
    """Where the figures come from: they only compare within one run on one machine."""
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "loadavg_at_start": [round(x, 2) for x in load],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_texts(path: Path, texts: list[str]) -> Path:
    """One JSON string a line: what wrk_messages.lua and loadgen.py read."""
    path.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    return path


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                .decode(errors="replace"))
    except OSError:
        return ""


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status: VmRSS (now) or VmHWM (peak)."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``filterd serve`` in a child process; use as a context manager."""

    def __init__(self, workers: int = 1, env: dict[str, str] | None = None,
                 ready_timeout: float = 60.0, verbose: bool = False) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="filterd-bench-"))
        self.env = env_with_repo({"FILTERD_DATABASE_URL": f"sqlite:///{self.tmp}/bench.db",
                                  **(env or {})})
        self.ready_timeout = ready_timeout
        self.verbose = verbose
        self.lines: list[tuple[float, str]] = []  # (seconds since start, output line)
        self.ready_seconds: float | None = None  # first /readyz 200
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:  # never leave a half-started server behind
            self.stop()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "filterd.cli", *(["-v"] if self.verbose else []), "serve",
               "--port", str(self.port), "--workers", str(self.workers), "--log-level", "info"]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, args=(t0,), daemon=True).start()
        with httpx.Client(base_url=self.url, timeout=5) as c:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("filterd serve exited:\n" + self.output())
                try:
                    if c.get("/readyz").status_code == 200:
                        self.ready_seconds = time.monotonic() - t0
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - t0 > self.ready_timeout:
                    raise RuntimeError("filterd serve not ready in time:\n" + self.output())
                time.sleep(0.02)
        if self.workers > 1:  # every worker has loaded its model, not just the first one
            while len(self.startup_times()) < self.workers:
                if time.monotonic() - t0 > self.ready_timeout:
                    raise RuntimeError("not every worker started:\n" + self.output())
                time.sleep(0.02)

    def _read(self, t0: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - t0, line.rstrip()))

    def startup_times(self) -> list[float]:
        """Seconds from process start to each worker's 'Application startup complete'."""
        return [t for t, line in self.lines if "Application startup complete" in line]

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines[-60:])

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        if self.workers == 1:
            return [self.proc.pid]
        return [p for p in children(self.proc.pid) if "spawn_main" in cmdline(p)]

    def peak_rss_mb(self) -> list[float]:
        return [round(status_kb(p, "VmHWM") / 1024, 1) for p in self.worker_pids()]

    def rss_mb(self) -> list[float]:
        return [round(status_kb(p, "VmRSS") / 1024, 1) for p in self.worker_pids()]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in self.worker_pids())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wrk(url: str, texts_file: Path, *, batch: int = 1, connections: int = 8,
        seconds: float = 10, tag: str = "r") -> dict[str, Any]:
    """Closed loop: ``connections`` requests always in flight for ``seconds``."""
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_HELP)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
           "-s", str(WRK_SCRIPT), url, "--", str(texts_file), str(batch), tag]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{out.stdout}\n{out.stderr}")
    r: dict[str, Any] = json.loads(line[len("WRKJSON "):])
    secs = r["duration_us"] / 1e6
    r["requests_per_s"] = round(r["requests"] / secs, 1)
    r["messages_per_s"] = round(r["requests"] * batch / secs, 1)
    r["errors"] = sum(r[k] for k in ("non2xx", "connect_errors", "read_errors", "write_errors",
                                     "timeouts"))
    r["degraded_messages"] = r.pop("degraded")
    r["errors_or_degraded"] = r["errors"] + r["degraded_messages"]
    r.update(connections=connections, batch=batch, seconds=seconds)
    for k in ("p50", "p95", "p99", "max"):
        r[f"{k}_ms"] = round(r.pop(f"{k}_us") / 1000, 2)
    return r


def loadgen_command(url: str, texts_file: Path, *, rate: float, seconds: float,
                    batch: int = 1, warmup: float = 2.0, window: float = 0.0,
                    tag: str = "o") -> list[str]:
    return [sys.executable, str(BENCH / "loadgen.py"), url, str(texts_file), "--rate",
            str(rate), "--seconds", str(seconds), "--batch", str(batch), "--warmup",
            str(warmup), "--window", str(window), "--tag", tag]


def loadgen(url: str, texts_file: Path, *, rate: float, seconds: float, batch: int = 1,
            warmup: float = 2.0, window: float = 0.0, tag: str = "o") -> dict[str, Any]:
    """Open loop at a constant rate (messages/s), in its own process (loadgen.py)."""
    cmd = loadgen_command(url, texts_file, rate=rate, seconds=seconds, batch=batch,
                          warmup=warmup, window=window, tag=tag)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 120,
                         env=env_with_repo())
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed:\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result
