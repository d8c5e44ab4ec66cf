# mypy: no-implicit-reexport
"""Conditions that must keep holding while a test runs."""
from __future__ import annotations

from test_driver import _core
from test_driver.errors import PollingConditionFailed

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
# (Line 1 tells mypy that imported names are not this module's own, so
# stubtest does not look for them at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["PollingCondition", "PollingConditionFailed"]


def _holds(condition: Callable[[], Any]) -> Callable[[], bool]:
    """condition() as the core calls it: it holds unless it returns a false
    value other than None, or raises an Exception (as the reference: an
    exception means "failed"; a BaseException such as Ctrl-C goes on)."""

    def holds() -> bool:
        try:
            result = condition()
            return result is None or bool(result)
        except Exception:
            return False

    return holds


def _describe(condition: Callable[[], Any], description: object) -> str:
    """The description given, else the function's docstring, else its name."""
    if description is not None:
        return str(description)
    doc = getattr(condition, "__doc__", None)
    if doc is not None and len(doc) > 0:
        return str(doc)
    return str(getattr(condition, "__name__", repr(condition)))


class PollingCondition(_core.PollingCondition):
    """A condition that must hold while a test runs."""

    def __init__(self, condition: Callable[[], Any], seconds_interval: float = 2.0,
                 description: str | None = None) -> None:
        if not callable(condition):
            raise TypeError(f"a polling condition must be callable, not {type(condition).__name__}")
        super().__init__(_holds(condition), seconds_interval, _describe(condition, description))
