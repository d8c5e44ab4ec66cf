"""The driver's log (terminal and $LOGFILE XML) and its global `rootlog`."""
from test_driver._core import Logger, LogNest, rootlog

__all__ = ["Logger", "LogNest", "rootlog"]
