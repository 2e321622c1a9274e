"""filterd's exceptions: one tree, so callers catch one thing and the API maps it once.

::

    FilterdError
    ├── InputError          bad text or bad JSONL line (what was wrong is in the message)
    │   ├── TextTooLongError    a message's text is over FILTERD_MAX_MESSAGE_BYTES
    │   └── BatchTooLargeError  a batch holds more than FILTERD_BATCH_MAX_MESSAGES
    ├── ConfigError         a setting or policy key with a bad value
    ├── ModelError          the model file is missing, corrupt, or fails to run
    ├── DataError           training data missing or malformed
    ├── NotFoundError       an unknown conversation, message or delivery
    ├── ConflictError       the request clashes with the stored state
    │   └── StaleStateError     a conversation changed between read and write (retried inside)
    ├── StoreError          the database cannot be reached or written
    ├── UnavailableError    the service cannot take this now; retry after ``retry_after`` s
    │   ├── RateLimitedError    a key or conversation sent more than its rate (429)
    │   └── OverloadedError     queues are full (503)
    ├── AuthError           no API key, or an unknown or revoked one (401)
    └── ForbiddenError      the caller's role may not do this

The HTTP mapping of this tree lives in one place: ``filterd/api/errors.py``.
"""


class FilterdError(Exception):
    """Base of every error filterd raises on purpose."""


class InputError(FilterdError, ValueError):
    """The input text or record is not acceptable; the message says why."""


class TextTooLongError(InputError):
    """A message's text is longer than the service accepts."""


class BatchTooLargeError(InputError):
    """A batch holds more messages than the service accepts at once."""


class ConfigError(FilterdError):
    """A configuration key has a bad value; the message names key and value."""


class ModelError(FilterdError):
    """The classifier could not be loaded or run."""


class DataError(FilterdError):
    """Training or evaluation data is missing or malformed."""


class NotFoundError(FilterdError, LookupError):
    """Something the caller named does not exist; ``code`` says what (``message_not_found``)."""

    def __init__(self, what: str, key: object) -> None:
        self.what = what
        self.code = f"{what}_not_found"
        super().__init__(f"No {what} {key!r} is known. Check the id.")


class ConflictError(FilterdError):
    """The request cannot be applied to the stored state as it is now."""


class StaleStateError(ConflictError):
    """A conversation was written by someone else between our read and our write."""


class StoreError(FilterdError):
    """The database cannot be reached or written."""


class AuthError(FilterdError):
    """The request carries no API key, or one the service does not know."""


class ForbiddenError(FilterdError):
    """The caller is known, but its role may not do what it asked."""


class UnavailableError(FilterdError):
    """The request cannot be served now; retrying after ``retry_after`` seconds may work."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = max(0.0, retry_after)
        super().__init__(message)

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds (at least 1), as HTTP wants it."""
        return str(max(1, int(-(-self.retry_after // 1))))


class RateLimitedError(UnavailableError):
    """A key or a conversation sent more than its allowed rate (HTTP 429)."""


class OverloadedError(UnavailableError):
    """The service's bounded queues are full; shed load rather than hang (HTTP 503)."""
