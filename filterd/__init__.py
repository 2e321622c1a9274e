"""filterd: abuse and frustration filter for customer-service chat.

>>> from filterd import Filter
>>> Filter().check("3 hours on hold, this is ridiculous").category
'frustrated'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from filterd.types import Route, Span, Verdict

if TYPE_CHECKING:
    from filterd.pipeline import Filter

__all__ = ["Filter", "Route", "Span", "Verdict"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy: `import filterd` stays cheap; the model loads only when a Filter is built.
    if name == "Filter":
        from filterd.pipeline import Filter

        return Filter
    raise AttributeError(name)
