# mypy: no-implicit-reexport
"""The driver: machines, VLANs, and the test script's symbols."""
from __future__ import annotations

import os

from test_driver import _core
from test_driver._core import get_tmp_dir
from test_driver.assertions import t
from test_driver.logger import Subtest, rootlog
from test_driver.machine import BaseMachine, Machine, retry
from test_driver.polling_condition import PollingCondition

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
# (Line 1 tells mypy that imported names are not this module's own, so
# stubtest does not look for them at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Literal, overload

__all__ = ["Driver", "GlobalTimeout", "PollingConditionScope", "get_tmp_dir"]


class GlobalTimeout(BaseException):
    """The run took longer than its global timeout (--global-timeout): raised
    by the command line's SIGALRM handler. A BaseException, like
    KeyboardInterrupt, so that `except Exception` in a script cannot swallow it."""


class PollingConditionScope:
    """What `@polling_condition` makes of a function: a context manager that
    keeps the condition in force while its block runs."""

    def __init__(self, driver: _core.Driver, condition: PollingCondition) -> None:
        self._driver = driver
        self.condition = condition

    def __enter__(self) -> None:
        self._driver.push_polling_condition(self.condition)

    def __exit__(self, *args: object) -> Literal[False]:
        self._driver.pop_polling_condition(self.condition)
        return False


class Driver(_core.Driver):
    """A handle to the driver that sets up the environment and runs the tests."""

    # The file name that tracebacks give the test script (the command line
    # sets the script's path).
    _script_path = "<test script>"

    def subtest(self, name: str) -> Subtest:
        """Context manager grouping the log of a named subtest."""
        return Subtest(name)

    def test_symbols(self) -> dict[str, Any]:
        """The symbols a test script sees."""
        symbols: dict[str, Any] = {
            "start_all": self.start_all,
            "test_script": self.test_script,
            "machines": self.machines,
            "vlans": self.vlans,
            "driver": self,
            "log": rootlog,
            "os": os,
            "create_machine": self.create_machine,
            "subtest": self.subtest,
            "run_tests": self.run_tests,
            "join_all": self.join_all,
            "retry": retry,
            "serial_stdout_off": self.serial_stdout_off,
            "serial_stdout_on": self.serial_stdout_on,
            "polling_condition": self.polling_condition,
            "Machine": Machine,
            # Beside the reference's names, upstream's newer ones.
            "t": t,
            "machines_qemu": self.machines,
            "QemuMachine": Machine,
            "BaseMachine": BaseMachine,
        }
        general = ", ".join(symbols)
        machines = symbols["machines"]
        for machine in machines:
            symbols[machine.name] = machine
        if len(machines) == 1:
            symbols["machine"] = machines[0]
        vlans = symbols["vlans"]
        for vlan in vlans:
            symbols[f"vlan{vlan.nr}"] = vlan
        print("additionally exposed symbols:\n    " + ", ".join(m.name for m in machines) + ",\n    " +
              ", ".join(f"vlan{v.nr}" for v in vlans) + ",\n    " + general)
        return symbols

    def test_script(self) -> None:
        """Run the test script."""
        with rootlog.nested("run the VM test script"):
            try:
                symbols = self.test_symbols()
                # dont_inherit: the script gets none of this module's __future__ imports.
                code = compile(self.tests, self._script_path, "exec", dont_inherit=True)
                exec(code, symbols)
            except BaseException as error:
                rootlog.record_failure(error)
                raise

    def run_tests(self) -> None:
        """Run the test script, then sync every machine that is up."""
        self.test_script()
        self.sync_all()

    def create_machine(self, args: dict[str, Any]) -> Machine:
        """Legacy: create a machine from a dict of options."""
        options = {str(k): str(v) for k, v in args.items() if v is not None and not isinstance(v, bool)}
        hda = args.get("hda")
        if isinstance(hda, tuple):
            options["hda"] = str(hda[0])
            options["hdaInterface"] = str(hda[1])
        return self.create_legacy_machine(options, keep_vm_state=bool(args.get("keep_vm_state", False)),
                                          allow_reboot=bool(args.get("allow_reboot", False)))

    if TYPE_CHECKING:
        @overload
        def polling_condition(self, fun_: Callable[[], Any], *, seconds_interval: float = 2.0,
                              description: str | None = None) -> PollingConditionScope: ...

        @overload
        def polling_condition(self, fun_: None = None, *, seconds_interval: float = 2.0,
                              description: str | None = None) -> Callable[[Callable[[], Any]],
                                                                          PollingConditionScope]: ...

    def polling_condition(self, fun_: Callable[[], Any] | None = None, *, seconds_interval: float = 2.0,
                          description: str | None = None) -> Any:
        """Decorator: a condition that must hold inside `with <name>:` blocks, checked before commands."""

        def make(fun: Callable[[], Any]) -> PollingConditionScope:
            return PollingConditionScope(self, PollingCondition(fun, seconds_interval, description))

        if fun_ is None:
            return make
        return make(fun_)
