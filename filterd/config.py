"""One validated ``Settings`` object, read once at start-up (``FILTERD_`` prefix).

Example: ``FILTERD_MASK_STYLE=tag FILTERD_MODEL_DIR=/opt/model filterd serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from filterd.errors import ConfigError

ApiRole = Literal["ingest", "agent", "supervisor", "admin"]
_SECRETS = frozenset({"api_keys", "originals_key"})  # never echoed in an error message


class Settings(BaseSettings):
    """Every knob filterd has. Unknown ``FILTERD_*`` variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="FILTERD_", extra="ignore", frozen=True)

    model_dir: Path | None = None  # None: the shipped models/filterd-minilm
    model_threads: int = Field(1, ge=1, le=64)
    policy_file: Path | None = None  # None: the shipped default policy
    mask_style: Literal["stars", "first_letter", "tag"] = "stars"
    pii_style: Literal["tag", "stars"] = "tag"
    pii_region: str = Field("US", min_length=2, max_length=2)
    allow_words: tuple[str, ...] = ()  # never masked, e.g. a brand name
    max_text_chars: int = Field(100_000, ge=1)
    model_max_chars: int = Field(2_000, ge=16)  # the model sees at most this much text

    # ---- the HTTP service (filterd serve)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    database_url: str = "sqlite:///filterd.db"  # or postgresql://user:pass@host/db
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
    delivery_poll_seconds: float = Field(2.0, gt=0)  # how often the worker looks for due work
    delivery_batch: int = Field(50, ge=1)  # deliveries claimed (and sent concurrently) at once

    # ---- access (interim: a plain key -> role map until hashed API keys replace it)
    api_keys: dict[str, ApiRole] = Field(default_factory=dict, repr=False)  # none: open
    # ---- originals: the unmasked text, Fernet-encrypted at rest, read by supervisors only
    store_originals: bool = False
    originals_key: SecretStr | None = None  # a Fernet key (Fernet.generate_key())

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, v: dict[str, ApiRole]) -> dict[str, ApiRole]:
        if any(len(key) < 16 for key in v):
            raise ValueError("every API key must be at least 16 characters (use e.g. "
                             "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return v

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
