"""One validated ``Settings`` object, read once at start-up (``FILTERD_`` prefix).

Example: ``FILTERD_MASK_STYLE=tag FILTERD_MODEL_DIR=/opt/model filterd serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from filterd.errors import ConfigError


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


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment plus overrides; errors name key and value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"Setting 'FILTERD_{key.upper()}' has value {first.get('input')!r}. {first['msg']}."
        ) from e
