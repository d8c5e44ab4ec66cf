"""The NixOS test driver, reimplemented in C++ (test_driver._core).

The submodules keep the reference's layout: test_driver.machine,
test_driver.driver, test_driver.logger, test_driver.polling_condition,
test_driver.vlan, plus test_driver.errors.
"""
# Annotations stay strings: importing typing and pathlib here would cost a
# third of the driver's start-up.
from __future__ import annotations

import os

__all__ = ["generate_driver_symbols"]


def generate_driver_symbols(path: str | os.PathLike[str] = "driver-symbols") -> list[str]:
    """Write the names a test script sees (without machine and VLAN names),
    comma-separated, to `path` (default: ./driver-symbols, as the reference
    driver), for linting test scripts: PYFLAKES_BUILTINS=$(cat driver-symbols)
    python3 -m pyflakes script.py. Returns the names.
    """
    from test_driver.driver import Driver

    with Driver([], [], "", ".") as driver:
        names = list(driver.test_symbols().keys())
    with open(path, "w") as fp:
        fp.write(",".join(names))
    return names
