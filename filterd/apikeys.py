"""API keys: ``fd_<id>_<secret>`` tokens, kept only as a SHA-256 digest.

``<id>`` (12 hex characters) is public: it names the key in ``filterd keys list``, the audit
log and logs, and lets the service find the key's row without scanning. ``<secret>`` is 32
random bytes from :mod:`secrets` (256 bits). The store keeps ``sha256(token)`` and the service
compares digests with :func:`hmac.compare_digest`.

Why SHA-256 and not bcrypt/scrypt/argon2: slow, salted hashes exist to make guessing
*low-entropy* secrets (passwords) expensive after a database leak. A 256-bit random secret
cannot be guessed at any hashing speed, so a slow hash adds no protection here; it would only
cost tens of milliseconds of CPU on every request that misses the key cache, and hand anyone
sending bogus keys a cheap way to burn the service's CPU. This is the usual design for API
tokens (GitHub's and Stripe's keys are checked the same way).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from filterd.errors import InputError
from filterd.store.base import KEY_ROLES, ApiKey, KeyRole, Store, utcnow

PREFIX = "fd"
_ID_BYTES = 6  # 12 hex characters: plenty for the number of keys a service holds
_SECRET_BYTES = 32
_TOKEN = re.compile(r"^fd_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)


def generate() -> tuple[str, str]:
    """A new ``(key_id, token)``; the token is shown once and never stored."""
    key_id = secrets.token_hex(_ID_BYTES)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def key_id_of(token: str) -> str | None:
    """The id inside a well-formed token; None if it is not one of ours."""
    m = _TOKEN.match(token)
    return m.group(1) if m else None


def digest(token: str) -> str:
    """What the store keeps: the hex SHA-256 of the whole token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches(token: str, stored_digest: str) -> bool:
    """Whether ``token`` is the key behind ``stored_digest`` (constant-time comparison)."""
    return hmac.compare_digest(digest(token).encode("ascii"), stored_digest.encode("ascii"))


def check_tenant(tenant: str) -> str:
    """A tenant name: 1-64 letters, digits, ``_``, ``.`` or ``-`` (it appears in keys and
    logs)."""
    if not _TENANT.match(tenant):
        raise InputError(f"Tenant {tenant!r} is not a valid name: use 1 to 64 letters, digits, "
                         "'_', '.' or '-', starting with a letter or digit.")
    return tenant


def check_role(role: str) -> KeyRole:
    if role not in KEY_ROLES:
        raise InputError(f"Role {role!r} is not a key role: use one of {', '.join(KEY_ROLES)}.")
    return role


def issue(store: Store, role: str, tenant: str, name: str | None = None,
          now: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key: the stored record (digest only) and the token to hand over once."""
    if name is not None and not 0 < len(name) <= 200:
        raise InputError("A key's name must be 1 to 200 characters.")
    key_id, token = generate()
    key = ApiKey(id=key_id, tenant=check_tenant(tenant), role=check_role(role), name=name,
                 digest=digest(token), created_at=now or utcnow())
    store.add_api_key(key)
    return key, token


def resolve_id(value: str) -> str:
    """A key id from what a user typed: the id, ``key-<id>`` (as logs show it) or the token."""
    value = value.strip()
    if value.startswith("key-"):
        value = value[4:]
    return key_id_of(value) or value
