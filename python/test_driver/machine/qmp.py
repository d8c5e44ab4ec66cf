# mypy: no-implicit-reexport
"""The QEMU Machine Protocol: a machine's `qmp_client` and its errors
(upstream's test_driver.machine.qmp)."""
from __future__ import annotations

from test_driver.errors import QMPAPIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from test_driver._core import Machine

__all__ = ["QMPAPIError", "QMPSession"]


class QMPSession:
    """`machine.qmp_client`: QMP commands on the machine's QMP socket
    (the connection is the machine's own, shared with qmp_command)."""

    def __init__(self, machine: Machine) -> None:
        self._machine = machine

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a QMP command; return QEMU's reply, {"return": value}. Raises QMPAPIError (class_name,
        description, transaction_id) for an error reply."""
        return {"return": self._machine.qmp_command(cmd, args or None)}
