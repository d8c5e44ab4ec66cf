"""Exceptions the driver raises; all derive from Exception."""
from __future__ import annotations

__all__ = ["Error", "MachineError", "RequestedAssertionFailed"]

# The core (test_driver._core) raises these for its errors of the same names
# (include/test_driver/errors.h).


class Error(Exception):
    """Any failure of the driver or of a test step."""


class MachineError(Error):
    """A machine could not do what was asked: QEMU died, a socket closed, a wait timed out."""


class RequestedAssertionFailed(AssertionError, Error):
    """A test step checked something and it did not hold (succeed, fail, wait_*, retry, `t`)."""


class PollingConditionFailed(Error):
    """A polling condition did not hold while the test ran."""


class QMPAPIError(Error):
    """QEMU answered a QMP command with an error: its class (class_name, e.g.
    "CommandNotFound") and description; transaction_id is None, as the driver
    sends no ids."""

    def __init__(self, message: str, class_name: str | None = None, description: str | None = None,
                 transaction_id: object = None) -> None:
        super().__init__(message)
        self.class_name = class_name
        self.description = description
        self.transaction_id = transaction_id
