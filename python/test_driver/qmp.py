"""The QEMU Machine Protocol: errors (commands are Machine.qmp_command)."""
from test_driver._core import QMPAPIError

__all__ = ["QMPAPIError"]
