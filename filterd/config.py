"""One validated ``Settings`` object, read once at start-up (``FILTERD_`` prefix).

Example: ``FILTERD_MASK_STYLE=tag FILTERD_MODEL_DIR=/opt/model filterd serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from filterd.errors import ConfigError

_SECRETS = frozenset({"originals_key"})  # never echoed in an error message


class Settings(BaseSettings):
    """Every knob filterd has. Unknown ``FILTERD_*`` variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="FILTERD_", extra="ignore", frozen=True)

    model_dir: Path | None = None  # None: the shipped models/filterd-minilm
    model_threads: int = Field(1, ge=1, le=64)  # onnxruntime intra-op threads per run
    # texts of one call scored at once on this many threads (0: one per CPU, at most 4)
    model_parallel: int = Field(0, ge=0, le=64)
    policy_file: Path | None = None  # None: the shipped default policy
    mask_style: Literal["stars", "first_letter", "tag"] = "stars"
    pii_style: Literal["tag", "stars"] = "tag"
    pii_region: str = Field("US", min_length=2, max_length=2)
    allow_words: tuple[str, ...] = ()  # never masked, e.g. a brand name
    max_text_chars: int = Field(100_000, ge=1)
    model_max_chars: int = Field(2_000, ge=16)  # the model sees at most this much text
    # How the model reads emoji: None as it was trained (its filterd_model.json); true: as
    # their names ("folded hands"; the shipped model's training); false: as the tokenizer's
    # [UNK] (models up to v7). Against its training, either way costs accuracy (model card).
    model_emoji_as_words: bool | None = None

    # ---- the HTTP service (filterd serve)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    database_url: str = "sqlite:///filterd.db"  # or postgresql://user:pass@host/db
    # SQLite: how long a write waits for another writer's lock before answering 503
    store_busy_timeout_ms: int = Field(5_000, ge=0, le=600_000)
    migrate_on_start: bool = True  # run the Alembic migrations when the service starts
    max_message_bytes: int = Field(8_192, ge=1)  # UTF-8 size limit of one message's text
    batch_max_messages: int = Field(500, ge=1)  # POST /v1/messages:batch

    # ---- delivery to the agent console and alerting (none configured: synchronous mode)
    console_webhook_url: HttpUrl | None = None  # every routed customer message
    console_webhook_urls: dict[str, HttpUrl] = Field(default_factory=dict)  # queue -> URL
    alert_webhook_url: HttpUrl | None = None  # messages routed to one of alert_queues
    alert_queues: tuple[str, ...] = ("supervisor", "crisis")
    delivery_worker: bool = True  # deliver in the background (off: drive it yourself)
    delivery_max_attempts: int = Field(8, ge=1)  # then the delivery is a dead letter
    delivery_backoff_seconds: float = Field(1.0, ge=0)  # first retry delay, doubled each time
    delivery_backoff_max_seconds: float = Field(300.0, ge=0)
    delivery_timeout_seconds: float = Field(5.0, gt=0)
    # a claimed delivery is retried by another worker this long after its call's timeout
    # (the window after a crash before in-flight deliveries are sent again)
    delivery_lease_margin_seconds: float = Field(10.0, gt=0)
    delivery_poll_seconds: float = Field(2.0, gt=0)  # how often the worker looks for due work
    delivery_batch: int = Field(50, ge=1)  # deliveries claimed (and sent concurrently) at once

    # ---- access (issue 6; filterd/api/access.py): keys live hashed in the store
    require_keys: bool = False  # true: never open, even while the store holds no key
    key_cache_seconds: float = Field(10.0, ge=0, le=3_600)  # a revoke takes effect within this
    metrics_require_key: bool = False  # true: /metrics needs a metrics or admin key
    # ---- end of access
    # ---- originals: the unmasked text, Fernet-encrypted at rest, read by supervisors only
    store_originals: bool = False
    originals_key: SecretStr | None = None  # a Fernet key (Fernet.generate_key())
    # ---- privacy: retention and erasure (issue 6; filterd/privacy.py, README "Privacy")
    retention_days: int | None = Field(90, ge=0)  # transcripts; 0 or None: kept forever
    audit_retention_days: int | None = Field(365, ge=0)  # the audit log; 0 or None: forever
    purge_interval_seconds: float = Field(3_600, ge=0)  # in `filterd serve`; 0: never there
    purge_batch: int = Field(500, ge=1, le=100_000)  # rows deleted per transaction
    # ---- end of privacy

    # ---- limits and model failure (issue 6; filterd/api/limits.py, filterd/classify/guard.py)
    # Every limit is per process: with N workers or instances the effective limit is N x.
    max_body_bytes: int | None = Field(None, ge=1)  # None: sized for a full :batch (below)
    rate_key_per_second: float = Field(2_000, ge=0)  # ingest messages per key; 0 = off
    rate_key_burst: int = Field(4_000, ge=1)
    rate_conversation_per_second: float = Field(5, ge=0)  # per (tenant, conversation); 0 = off
    rate_conversation_burst: int = Field(20, ge=1)
    rate_api_per_second: float = Field(200, ge=0)  # other /v1 requests per key; 0 = off
    rate_api_burst: int = Field(400, ge=1)
    max_inflight: int = Field(64, ge=0)  # ingest requests judged at once; 0 = unbounded
    admission_wait_ms: int = Field(100, ge=0)  # wait for an in-flight slot, then 503
    model_timeout_ms: int = Field(250, ge=0)  # model time budget per call; 0 = none
    model_timeout_per_text_ms: int = Field(10, ge=0)  # ... plus this per text in the call
    model_concurrency: int = Field(32, ge=1, le=1_024)  # model calls (threads) at once
    breaker_failures: int = Field(5, ge=0)  # consecutive failures that open it; 0 = off
    breaker_reset_seconds: float = Field(30.0, gt=0)  # open -> one trial call after this
    degraded_policy: Literal["open", "closed"] = "open"  # closed: degraded -> review queue

    @property
    def body_limit(self) -> int:
        """FILTERD_MAX_BODY_BYTES, or room for a full batch of max-size texts: JSON may
        escape each text to twice its UTF-8 size (``\\uXXXX`` for CJK), plus ~1 KiB of
        ids, sender and metadata per message."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.batch_max_messages * (2 * self.max_message_bytes + 1_024) + 1_024
    # ---- end of limits and model failure

    # ---- micro-batching of model calls in the service (issue 5; filterd/classify/batching.py)
    micro_batch: bool = False  # concurrent requests share model calls (see README Performance)
    batch_max_texts: int = Field(32, ge=1, le=1_024)  # texts one shared model call takes
    batch_wait_ms: float = Field(2.0, ge=0, le=100)  # wait after the first text; 0: greedy
    batch_queue_texts: int = Field(1_024, ge=1)  # texts queued for the model; more: 503
    # ---- end of micro-batching

    # ---- group commit of single messages (issue 5; filterd/coalesce.py)
    coalesce: bool = True  # concurrent POST /v1/messages share ingest passes (README Perf.)
    coalesce_max: int = Field(64, ge=1, le=10_000)  # messages one pass takes
    coalesce_wait_ms: float = Field(0.0, ge=0, le=100)  # wait after the first; 0: greedy
    coalesce_queue: int = Field(1_024, ge=1)  # messages queued for a pass; more: 503
    coalesce_threads: int = Field(1, ge=1, le=16)  # passes running at once per worker
    coalesce_await: bool = True  # handler awaits on the event loop (False: thread pool waits)
    # filterd serve: keep start-up objects out of full garbage collections (api/app.py)
    gc_freeze: bool = True
    # ---- end of group commit

    # ---- live event streams (GET /v1/events; filterd/events.py StoreTail)
    # while a stream is open, each worker reads the messages any worker stored this often
    events_poll_seconds: float = Field(0.5, gt=0, le=60)
    # ---- end of live event streams

    @property
    def webhooks_configured(self) -> bool:
        return bool(self.console_webhook_url or self.console_webhook_urls
                    or self.alert_webhook_url)


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment plus overrides; errors name key and value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        key = name if name in _SECRETS else ".".join(str(x) for x in first["loc"])
        value = "<hidden>" if name in _SECRETS else repr(first.get("input"))
        raise ConfigError(f"Setting 'FILTERD_{key.upper()}' has value {value}. {first['msg']}."
                          ) from e
