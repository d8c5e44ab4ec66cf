import unittest

__all__ = ["t"]

# At run time a stand-in that makes the TestCase on first use.
t: unittest.TestCase
