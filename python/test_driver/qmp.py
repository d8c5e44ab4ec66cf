"""The QEMU Machine Protocol: errors (commands are Machine.qmp_command)."""
from test_driver.errors import QMPAPIError

__all__ = ["QMPAPIError"]
