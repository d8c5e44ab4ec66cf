"""Machines, their start commands, and `retry`.

BaseMachine is what every machine can do through a root shell inside it;
Machine (upstream's QemuMachine) is one that QEMU runs.
"""
from test_driver._core import (
    CHAR_TO_KEY,
    BaseMachine,
    LegacyStartCommand,
    Machine,
    NixStartScript,
    StartCommand,
    retry,
)

QemuMachine = Machine

__all__ = ["CHAR_TO_KEY", "BaseMachine", "LegacyStartCommand", "Machine", "NixStartScript", "QemuMachine",
           "StartCommand", "retry"]
