"""Originals: the unmasked text of a message, kept only when asked and only encrypted.

Off by default. With ``FILTERD_STORE_ORIGINALS=true`` the ingest flow seals each message's
text with the Fernet key ``FILTERD_ORIGINALS_KEY`` (AES-128-CBC + HMAC-SHA256) and the store
writes the token beside the message, in the same transaction; the database never sees the
plaintext. ``GET /v1/messages/{cid}/{mid}/original`` opens it for supervisors, audited.

A token seals the conversation and message ids with the text, so a token copied onto another
row of the table does not open there.
"""

from __future__ import annotations

import orjson
from cryptography.fernet import Fernet, InvalidToken

from filterd.config import Settings
from filterd.errors import ConfigError, FilterdError

_KEY = "FILTERD_ORIGINALS_KEY"


class Sealer:
    """Encrypts originals for the store and decrypts them for an audited read."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as e:
            raise ConfigError(
                f"Setting '{_KEY}' is not a valid Fernet key (32 url-safe base64-encoded "
                "bytes). Make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'.") from e

    def seal(self, conversation_id: str, message_id: str, text: str) -> str:
        """The encrypted token of one message's original text."""
        plain = orjson.dumps([conversation_id, message_id, text])
        return self._fernet.encrypt(plain).decode("ascii")

    def open(self, conversation_id: str, message_id: str, token: str) -> str:
        """The original text; fails if the key or the row does not match the token."""
        try:
            cid, mid, text = orjson.loads(self._fernet.decrypt(token.encode("ascii")))
        except InvalidToken as e:
            raise ConfigError(f"The stored original cannot be decrypted with {_KEY}: the key "
                              "differs from the one it was written with.") from e
        if (cid, mid) != (conversation_id, message_id):
            raise FilterdError("The stored original belongs to another message; the table "
                               "was altered. Investigate before trusting it.")
        return str(text)


def sealer_from_settings(settings: Settings) -> Sealer | None:
    """The sealer for these settings (None without a key); ConfigError if it is unusable."""
    key = settings.originals_key.get_secret_value() if settings.originals_key else ""
    if not key:
        if settings.store_originals:
            raise ConfigError(f"FILTERD_STORE_ORIGINALS is on but {_KEY} is not set. Set it "
                              "to a Fernet key, or turn FILTERD_STORE_ORIGINALS off.")
        return None
    return Sealer(key)
