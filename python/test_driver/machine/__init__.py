# mypy: no-implicit-reexport
"""Machines, their start commands, and `retry` (upstream's package
test_driver.machine; test_driver.machine.qmp is QMP).

BaseMachine is what every machine can do through a root shell inside it;
Machine (upstream's QemuMachine) is one that QEMU runs, NspawnMachine one
that systemd-nspawn runs.
"""
from __future__ import annotations

from test_driver import _core
from test_driver._core import (
    CHAR_TO_KEY,
    DEFAULT_TIMEOUT,
    BaseMachine,
    LegacyStartCommand,
    Machine,
    NixStartScript,
    NspawnMachine,
    StartCommand,
)

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta
    from typing import Any, Callable

QemuMachine = Machine

__all__ = ["CHAR_TO_KEY", "BaseMachine", "LegacyStartCommand", "Machine", "NixStartScript", "NspawnMachine",
           "QemuMachine", "StartCommand", "retry"]

def retry(fn: Callable[[bool], Any], timeout_seconds: float | timedelta = DEFAULT_TIMEOUT, *,
          timeout: float | timedelta | None = None) -> None:
    """Call fn(last_try) until it returns a true value; raise RequestedAssertionFailed ("action timed out
    after N.NN seconds (timeout=T)") when `timeout_seconds` (upstream's name; `timeout` is the older one)
    have passed. The last call gets last_try=True. Between calls it pauses a sixteenth of the time waited
    so far: at least 20 ms and as long as the last call took, at most one second."""
    if timeout is not None:
        if timeout_seconds is not DEFAULT_TIMEOUT:
            raise TypeError("retry() got both timeout_seconds and timeout (the same thing)")
        timeout_seconds = timeout
    _core.retry(fn, timeout_seconds)

