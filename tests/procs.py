"""Real processes for the fault and concurrency tests: a ``filterd serve`` child, a console
webhook that outlives it, and a load generator that records what each request got.

These tests kill servers, fill disks and run several workers; an in-process ASGI client
cannot show any of that, so everything here talks TCP to real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]

# The real CLI with the root logger at DEBUG: ``filterd.cli.main``'s own basicConfig then
# leaves it alone, so every library that logs (SQLAlchemy, httpx, uvicorn, ...) is heard.
DEBUG_CLI = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, "
             "format='%(levelname)s %(name)s: %(message)s'); "
             "from filterd.cli import main; sys.exit(main(sys.argv[1:]))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(**settings: str) -> dict[str, str]:
    """This environment minus any FILTERD_*/PROMETHEUS_* of the caller, plus ``settings``;
    PYTHONPATH points at this checkout whatever the environment's install points at."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FILTERD_", "PROMETHEUS_MULTIPROC"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(settings)
    return env


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (uvicorn workers and their helpers); Linux /proc."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


class Service:
    """``filterd serve`` in a child process on a free port.

    Output (stdout and stderr together) goes to a pipe drained by a thread into
    :attr:`lines`: a pipe rather than a file, so a file-size limit put on the server (the
    disk-full test) does not also stop its logging.
    """

    def __init__(self, cwd: Path, env: Mapping[str, str], *serve_args: str,
                 launcher: Sequence[str] = ("-m", "filterd.cli"),
                 cli_args: Sequence[str] = (), port: int | None = None) -> None:
        self.port = port or free_port()
        self.cmd = [sys.executable, *launcher, *cli_args, "serve", "--port", str(self.port),
                    *serve_args]
        self.cwd, self.env = cwd, dict(env)
        self.lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def output(self) -> str:
        if self._drain is not None and self.proc is not None and self.proc.poll() is not None:
            self._drain.join(timeout=5)
        return "".join(self.lines)

    def start(self, ready_timeout: float | None = 90) -> Service:
        """Start the process; wait until /readyz answers 200 unless ``ready_timeout`` is
        None (then call :meth:`wait_ready` later, e.g. after starting a second server)."""
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._drain = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._drain.start()
        if ready_timeout is not None:
            self.wait_ready(ready_timeout)
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                self.lines.append(raw.decode("utf-8", errors="replace"))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=5) as c:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"filterd serve exited ({self.proc.returncode}):\n"
                                         + self.output)
                with contextlib.suppress(httpx.TransportError):
                    if c.get("/readyz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError("filterd serve did not become ready:\n" + self.output)
                time.sleep(0.1)

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the server and every process under it: no shut-down code runs."""
        assert self.proc is not None
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        """Ctrl-C (a graceful shut-down); SIGKILL if it takes longer than ``timeout``."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in descendants(self.proc.pid):  # orphaned workers, if any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return self.proc.returncode

    def __enter__(self) -> Service:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(timeout=10)
        if exc_type is not None:  # pytest shows captured stdout with the failure
            print(f"--- output of {' '.join(self.cmd[1:])} (last 200 lines):")
            print("".join(self.output.splitlines(keepends=True)[-200:]))


# ------------------------------------------------------------------ the console webhook


class _ConsoleHandler(BaseHTTPRequestHandler):
    server: _ConsoleServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.console.receive(self.headers.get("Idempotency-Key"), body)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _ConsoleServer(ThreadingHTTPServer):
    request_queue_size = 256  # the deliverer opens up to FILTERD_DELIVERY_BATCH at once
    console: Console


class Console:
    """A console webhook in a thread of the test process, so it outlives any filterd it
    serves. It does what the README asks of a receiver: it accepts each Idempotency-Key
    once and drops repeats (counted in :attr:`duplicates`). ``down`` answers 503;
    ``delay`` holds each answer back after the call was accepted."""

    def __init__(self) -> None:
        self.down = False
        self.delay = 0.0  # seconds between accepting a call and answering it (a slow console)
        self.accepted: dict[str, dict[str, Any]] = {}
        self.duplicates: Counter[str] = Counter()
        self.refused = 0
        self._lock = threading.Lock()
        self._server = _ConsoleServer(("127.0.0.1", 0), _ConsoleHandler)
        self._server.console = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/console"

    def receive(self, key: str | None, body: bytes) -> int:
        with self._lock:
            if self.down:
                self.refused += 1
                return 503
            if not key:
                return 400
            if key in self.accepted:
                self.duplicates[key] += 1
            else:
                self.accepted[key] = json.loads(body)
            delay = self.delay
        time.sleep(delay)
        return 200

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ------------------------------------------------------------------ load


@dataclass
class Result:
    """What one request got: an HTTP status, or the transport error that replaced it."""

    status: int | None = None
    error: str | None = None  # httpx exception class name
    replayed: bool = False
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def unknown(self) -> bool:
        """Sent, but no answer came: the server may or may not have stored it."""
        return self.error is not None and self.error != "ConnectError"


class Load:
    """Posts ``requests`` (path, JSON body) from ``concurrency`` threads, each with its own
    client, and records a :class:`Result` per request. A thread stops at its first refused
    connection (the server is gone), leaving later requests unsent (``None``)."""

    def __init__(self, base_urls: Sequence[str], requests: Sequence[tuple[str, Any]],
                 concurrency: int, *, keepalive: bool = True, timeout: float = 60) -> None:
        self.base_urls = list(base_urls)
        self.requests = list(requests)
        self.results: list[Result | None] = [None] * len(self.requests)
        self.concurrency = concurrency
        self.keepalive = keepalive
        self.timeout = timeout
        self._next = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        for n in range(self.concurrency):
            t = threading.Thread(target=self._work, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def join(self, timeout: float = 300) -> Load:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "load did not finish"
        return self

    def run(self) -> Load:
        return self.start().join()

    @property
    def ok_count(self) -> int:
        return sum(1 for r in list(self.results) if r is not None and r.ok)

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.requests):
                return None
            self._next += 1
            return self._next - 1

    def _work(self, n: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if self.keepalive else 0)
        with httpx.Client(timeout=self.timeout, limits=limits) as c:
            while (i := self._take()) is not None:
                path, body = self.requests[i]
                # several servers (workers, processes): spread over them, round robin
                url = self.base_urls[(i + n) % len(self.base_urls)] + path
                self.results[i] = r = send(c, url, body)
                if r.error == "ConnectError":
                    return


def send(c: httpx.Client, url: str, body: Any) -> Result:
    try:
        resp = c.post(url, json=body)
    except httpx.TransportError as e:
        return Result(error=type(e).__name__)
    return Result(status=resp.status_code,
                  replayed=resp.headers.get("Idempotent-Replayed") == "true",
                  body=resp.json() if resp.content else None)


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while not (ok := bool(predicate())) and time.monotonic() < deadline:
        time.sleep(interval)
    return ok


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (all label values) in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for fam in text_string_to_metric_families(text)
               for s in fam.samples if s.name == name)


def lines_containing(lines: Sequence[str], needles: Sequence[str]) -> Iterator[str]:
    for line in lines:
        low = line.lower()
        for needle in needles:
            if needle.lower() in low:
                yield f"{needle!r} in: {line.rstrip()}"
