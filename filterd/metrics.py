"""Every Prometheus collector filterd exports, defined once.

One :class:`Metrics` per app, on its own registry (two apps in one process, as in tests,
never collide). With several worker processes (``filterd serve --workers N``), set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before the workers start: prometheus-client
then keeps every value in files there, and :meth:`Metrics.render` aggregates all workers'
files with a ``MultiProcessCollector`` on a fresh registry, as prometheus-client documents.

Labels are bounded: categories, queues, levels, flags, span kinds, webhook
kinds and stages are fixed sets; ``channel`` is the caller's channel name (keep them few).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from filterd.classify.guard import FAILURE_REASONS, BreakerState, FailureReason
from filterd.types import Verdict

if TYPE_CHECKING:
    from filterd.store.base import Removed  # privacy (issue 6)

# limits and model failure (issue 6)
REJECT_REASONS = ("rate_limited_key", "rate_limited_conversation", "overloaded",
                  "body_too_large")
_CIRCUIT_STATES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
# privacy (issue 6): the tables a purge or an erasure removes rows from (store.base.Removed)
PRIVACY_TABLES = ("conversations", "messages", "message_originals", "feedback", "outbox",
                  "audit_log")
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The collectors; the service calls the ``observe_*`` helpers."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        # prometheus-client picks its file-backed values from this variable at import time;
        # read here once, at start-up, to render the same way.
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.messages = Counter(
            "filterd_messages", "Messages judged and stored (replays not counted).",
            ["channel", "role", "category", "queue", "level"], registry=r)
        self.flags = Counter("filterd_flags", "Flags fired on stored messages.", ["flag"],
                             registry=r)
        self.masked_spans = Counter("filterd_masked_spans", "Spans masked, by kind.", ["kind"],
                                    registry=r)
        self.escalations = Counter("filterd_escalations",
                                   "Conversations escalated to an urgent queue.", ["queue"],
                                   registry=r)
        self.strikes = Counter("filterd_strikes", "Abuse strikes added to conversations.",
                               registry=r)
        self.replays = Counter("filterd_replays",
                               "Idempotent retries answered from the store.", registry=r)
        self.delivery_attempts = Counter("filterd_delivery_attempts",
                                         "Webhook delivery attempts.", ["kind"], registry=r)
        self.delivery_failures = Counter("filterd_delivery_failures",
                                         "Webhook delivery attempts that failed.", ["kind"],
                                         registry=r)
        self.dead_letters = Counter("filterd_dead_letters",
                                    "Deliveries given up after the last attempt.", ["kind"],
                                    registry=r)
        # Every worker measures the same table at scrape time: the latest measurement wins.
        self.outbox_depth = Gauge("filterd_outbox_depth",
                                  "Deliveries waiting to be delivered.", registry=r,
                                  multiprocess_mode="mostrecent")
        self.stage_seconds = Histogram("filterd_stage_seconds",
                                       "Pipeline time per judge call, by stage.", ["stage"],
                                       buckets=_LATENCY, registry=r)
        self.ingest_seconds = Histogram("filterd_ingest_seconds",
                                        "Time to judge and store one ingest pass: one request's "
                                        "messages, or with FILTERD_COALESCE several requests'.",
                                        buckets=_LATENCY, registry=r)
        # ---- limits and model failure (issue 6): filterd/api/limits.py, classify/guard.py
        # ---- HTTP answers (filterd/api/http_metrics.py): for the 5xx and latency alerts
        self.http_requests = Counter("filterd_http_requests",
                                     "HTTP answers by method, route template and status.",
                                     ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram("filterd_http_request_seconds",
                                      "Time to the first byte of the answer, by route.",
                                      ["route"], buckets=_LATENCY, registry=r)
        self.rejected = Counter("filterd_rejected_requests",
                                "Requests refused by a limit, by reason.", ["reason"],
                                registry=r)
        self.inflight = Gauge("filterd_inflight_requests",
                              "Ingest requests being judged now (FILTERD_MAX_INFLIGHT).",
                              registry=r, multiprocess_mode="livesum")
        self.model_failures = Counter("filterd_model_failures",
                                      "Model calls that failed, by reason.", ["reason"],
                                      registry=r)
        self.degraded_messages = Counter("filterd_degraded_messages",
                                         "Stored messages judged without the model.",
                                         registry=r)
        self.circuit_state = Gauge("filterd_model_circuit_state",
                                   "Model circuit breaker: 0 closed, 1 half-open, 2 open.",
                                   registry=r, multiprocess_mode="livemax")
        for reason in REJECT_REASONS:  # exported at 0 from the start, for alert rules
            self.rejected.labels(reason)
        for reason in FAILURE_REASONS:
            self.model_failures.labels(reason)
        # ---- end of limits and model failure
        # ---- privacy (issue 6): filterd/privacy.py; table labels are the store's tables
        self.purged_rows = Counter("filterd_purged_rows",
                                   "Rows deleted by the retention purge, by table.", ["table"],
                                   registry=r)
        self.erasures = Counter("filterd_erasures",
                                "Customer erasures carried out (right to erasure).", registry=r)
        self.erased_rows = Counter("filterd_erased_rows",
                                   "Rows erased (audit_log: pseudonymised) by customer erasures, "
                                   "by table.", ["table"], registry=r)
        for table in PRIVACY_TABLES:
            self.purged_rows.labels(table)
            self.erased_rows.labels(table)
        # ---- end of privacy

    # ---- limits and model failure (issue 6): Metrics is the guard's listener
    def model_failed(self, reason: FailureReason) -> None:
        self.model_failures.labels(reason).inc()

    def circuit_changed(self, state: BreakerState) -> None:
        self.circuit_state.set(_CIRCUIT_STATES[state])
    # ---- end of limits and model failure

    # ---- privacy (issue 6)
    def observe_purged(self, removed: Removed) -> None:
        for table, n in removed.as_dict().items():
            if n:
                self.purged_rows.labels(table).inc(n)

    def observe_erasure(self, removed: Removed) -> None:
        self.erasures.inc()
        for table, n in removed.as_dict().items():
            if n:
                self.erased_rows.labels(table).inc(n)
    # ---- end of privacy

    def observe_stages(self, stage_seconds: Mapping[str, float]) -> None:
        for stage, seconds in stage_seconds.items():
            self.stage_seconds.labels(stage).observe(seconds)

    def observe_message(self, channel: str, role: str, verdict: Verdict, strike: bool,
                        escalated_to: str | None) -> None:
        self.messages.labels(channel, role, verdict.category, verdict.route.queue,
                             str(verdict.level)).inc()
        for flag in verdict.flags:
            self.flags.labels(flag).inc()
        for span in verdict.spans:
            self.masked_spans.labels(span.kind).inc()
        if verdict.degraded:  # limits and model failure (issue 6)
            self.degraded_messages.inc()
        if strike:
            self.strikes.inc()
        if escalated_to:
            self.escalations.labels(escalated_to).inc()

    def render(self) -> bytes:
        """The text exposition: this app's registry, or every worker's in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
