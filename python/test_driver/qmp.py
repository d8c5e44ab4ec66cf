"""The QEMU Machine Protocol: the older module name of test_driver.machine.qmp."""
from test_driver.machine.qmp import QMPAPIError, QMPSession

__all__ = ["QMPAPIError", "QMPSession"]
