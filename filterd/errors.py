"""filterd's exceptions: one tree, so callers catch one thing and the API maps it once.

::

    FilterdError
    ├── InputError          bad text or bad JSONL line (what was wrong is in the message)
    ├── ConfigError         a setting or policy key with a bad value
    ├── ModelError          the model file is missing, corrupt, or fails to run
    └── DataError           training data missing or malformed
"""


class FilterdError(Exception):
    """Base of every error filterd raises on purpose."""


class InputError(FilterdError, ValueError):
    """The input text or record is not acceptable; the message says why."""


class ConfigError(FilterdError):
    """A configuration key has a bad value; the message names key and value."""


class ModelError(FilterdError):
    """The classifier could not be loaded or run."""


class DataError(FilterdError):
    """Training or evaluation data is missing or malformed."""
