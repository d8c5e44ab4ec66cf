"""Exceptions the driver raises; all derive from Exception."""
from test_driver._core import Error, MachineError, RequestedAssertionFailed

__all__ = ["Error", "MachineError", "RequestedAssertionFailed"]
