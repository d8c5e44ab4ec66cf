"""The driver: machines, VLANs, and the test script's symbols."""
from test_driver._core import Driver, get_tmp_dir

__all__ = ["Driver", "get_tmp_dir"]
