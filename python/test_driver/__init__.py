"""The NixOS test driver, reimplemented in C++ (test_driver._core).

The submodules keep the reference's layout: test_driver.machine,
test_driver.driver, test_driver.logger, test_driver.polling_condition,
test_driver.vlan, plus test_driver.errors.
"""
