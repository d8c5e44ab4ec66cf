"""`t`, the test script's assertions: unittest.TestCase's assert* methods,
failing with RequestedAssertionFailed. unittest is imported on first use, as
importing it takes longer than the rest of the driver's start-up."""
from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing is what this module avoids.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import unittest
    from typing import Any

__all__ = ["t"]


class _Assertions:
    """Forwards to one unittest.TestCase, made on first use."""

    _case: "unittest.TestCase | None" = None

    def __getattr__(self, name: str) -> Any:
        if _Assertions._case is None:
            import unittest

            from test_driver.errors import RequestedAssertionFailed

            class AssertionTester(unittest.TestCase):
                failureException = RequestedAssertionFailed
                maxDiff = None

            _Assertions._case = AssertionTester()
        return getattr(_Assertions._case, name)


t: "unittest.TestCase" = _Assertions()  # type: ignore[assignment]
