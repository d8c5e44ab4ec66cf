"""Virtual LANs: one vde_switch each."""
from test_driver._core import VLan

__all__ = ["VLan"]
