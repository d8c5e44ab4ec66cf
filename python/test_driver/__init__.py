"""The NixOS test driver, reimplemented in C++ (test_driver._core).

The submodules keep the reference's layout: test_driver.machine,
test_driver.driver, test_driver.logger, test_driver.polling_condition,
test_driver.vlan, plus test_driver.errors.
"""
from pathlib import Path
from typing import List, Union

__all__ = ["generate_driver_symbols"]


def generate_driver_symbols(path: Union[str, Path] = "driver-symbols") -> List[str]:
    """Write the names a test script sees (without machine and VLAN names),
    comma-separated, to `path` (default: ./driver-symbols, as the reference
    driver), for linting test scripts: PYFLAKES_BUILTINS=$(cat driver-symbols)
    python3 -m pyflakes script.py. Returns the names.
    """
    from test_driver.driver import Driver

    with Driver([], [], "", Path()) as driver:
        names = list(driver.test_symbols().keys())
    with open(path, "w") as fp:
        fp.write(",".join(names))
    return names
