"""Conditions that must keep holding while a test runs."""
from test_driver._core import PollingCondition
from test_driver.errors import PollingConditionFailed

__all__ = ["PollingCondition", "PollingConditionFailed"]
