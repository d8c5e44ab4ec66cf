"""Machines, their start commands, and `retry`."""
from test_driver._core import (
    LegacyStartCommand,
    Machine,
    NixStartScript,
    StartCommand,
    retry,
)

__all__ = ["LegacyStartCommand", "Machine", "NixStartScript", "StartCommand", "retry"]
