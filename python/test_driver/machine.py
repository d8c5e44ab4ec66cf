"""Machines, their start commands, and `retry`."""
from test_driver._core import (
    CHAR_TO_KEY,
    LegacyStartCommand,
    Machine,
    NixStartScript,
    StartCommand,
    retry,
)

__all__ = ["CHAR_TO_KEY", "LegacyStartCommand", "Machine", "NixStartScript", "StartCommand", "retry"]
