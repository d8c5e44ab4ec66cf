# mypy: no-implicit-reexport
"""The driver: machines, VLANs, and the test script's symbols."""
from __future__ import annotations

import os

from test_driver import _core
from test_driver._core import get_tmp_dir
from test_driver.assertions import t
from test_driver.debug import DebugAbstract, DebugNop
from test_driver.errors import Error
from test_driver.logger import Subtest, rootlog
from test_driver.machine import BaseMachine, Machine, NixStartScript, NspawnMachine, QemuMachine, retry
from test_driver.polling_condition import PollingCondition

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
# (Line 1 tells mypy that imported names are not this module's own, so
# stubtest does not look for them at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta
    from typing import Any, Callable, Literal, overload

__all__ = ["DebugNop", "Driver", "GlobalTimeout", "PollingConditionScope", "get_tmp_dir", "pythonize_name"]


def pythonize_name(name: str) -> str:
    """The test script's symbol for the machine `name`, as upstream: a
    character that cannot be in a Python identifier is `_`, and so is a first
    one that cannot start it (`a-b` is `a_b`; machine.name stays `a-b`)."""
    # Upstream's re.sub(r"^[^A-Za-z_]|[^A-Za-z0-9_]", "_", name), without importing re.
    chars = [c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name]
    if chars and name[0].isdigit():
        chars[0] = "_"
    return "".join(chars)


class GlobalTimeout(BaseException):
    """The run took longer than its global timeout (--global-timeout): raised
    by the command line's SIGALRM handler. A BaseException, like
    KeyboardInterrupt, so that `except Exception` in a script cannot swallow it."""


class PollingConditionScope:
    """What `@polling_condition` makes of a function: a context manager that
    keeps the condition in force while its block runs, and `wait()`."""

    def __init__(self, driver: _core.Driver, condition: PollingCondition) -> None:
        self._driver = driver
        self.condition = condition

    def __enter__(self) -> None:
        self._driver.push_polling_condition(self.condition)

    def __exit__(self, *args: object) -> Literal[False]:
        self._driver.pop_polling_condition(self.condition)
        return False

    def wait(self, timeout: float | timedelta = _core.DEFAULT_TIMEOUT) -> None:
        """Wait until the condition holds (checked with `retry`, whatever its
        interval), raising after `timeout` seconds; as upstream's."""
        description = self.condition.description

        def holds(last: bool) -> bool:
            if last:
                rootlog.info(f"Last chance for {description}")
            ok = self.condition.check(force=True)
            if not ok and not last:
                rootlog.info(f"({description} failure not fatal yet)")
            return ok

        with rootlog.nested(f"waiting for {description}"):
            retry(holds, timeout_seconds=timeout)


class Driver(_core.Driver):
    """A handle to the driver that sets up the environment and runs the tests."""

    # The file name that tracebacks give the test script (the command line
    # sets the script's path).
    _script_path = "<test script>"

    def __init__(self, start_scripts: list[str] | None, vlans: list[int] | None, tests: str,
                 out_dir: str | os.PathLike[str], keep_vm_state: bool = False,
                 debug: DebugAbstract | None = None) -> None:
        super().__init__(start_scripts, vlans, tests, out_dir, keep_vm_state)
        # Plain lists, as upstream's: a machine a script appends is started,
        # joined, synced and cleaned up like the others.
        self.machines_qemu: list[Machine] = list(self.core_machines)
        self.machines_nspawn: list[NspawnMachine] = list(self.core_containers)
        # create_machine()'s, cleaned up at the end too.
        self._created: list[BaseMachine] = []
        # The script's `debug` (upstream's): test_driver.debug.Debug with
        # --debug-hook-attach, which also serves a debugger when the script fails.
        self.debug: DebugAbstract = debug if debug is not None else DebugNop()
        # A name is any name (as upstream); two that give the script one
        # symbol (a-b, a_b) are an error here, where upstream shadows one.
        given: dict[str, str] = {}
        for machine in self.machines:
            symbol = pythonize_name(machine.name)
            other = given.setdefault(symbol, machine.name)
            if other != machine.name:
                self.cleanup()
                raise Error(f"the machine names '{other}' and '{machine.name}' are both the test script's "
                            f"symbol {symbol}: rename one")

    @property
    def machines(self) -> list[BaseMachine]:
        """Every machine, sorted by name (as upstream): machines_qemu, then machines_nspawn."""
        machines: list[BaseMachine] = [*self.machines_qemu, *self.machines_nspawn]
        machines.sort(key=lambda machine: machine.name)
        return machines

    def __exit__(self, *args: object) -> Literal[False]:
        self.cleanup()
        return False

    def cleanup(self) -> None:
        """Kill every machine (those a script added or created too) and VLAN."""
        core = set(map(id, [*self.core_machines, *self.core_containers]))
        # Each once: create_machine()'s may have been appended to machines_qemu.
        others: dict[int, BaseMachine] = {}
        for machine in [*self.machines, *self._created]:
            if id(machine) not in core:
                others.setdefault(id(machine), machine)
        self.release_machines(list(others.values()))
        super().cleanup()

    def start_all(self) -> None:
        """Start all machines, in parallel."""
        self.start_machines(self.machines)

    def join_all(self) -> None:
        """Wait for all machines to shut down."""
        self.join_machines(self.machines)

    def sync_all(self) -> None:
        """Run `sync` on every machine that is up."""
        self.sync_machines(self.machines)

    def dump_machine_ssh(self) -> None:
        """Upstream: print how to ssh into each machine over the SSH backdoor
        (vsock), when it is enabled. This driver has no SSH backdoor (it needs
        /dev/vhost-vsock): as upstream without it, nothing is printed, and a
        warning says why."""
        rootlog.warning("dump_machine_ssh: the SSH backdoor is not available in this driver "
                        "(it needs vhost-vsock, /dev/vhost-vsock); use the backdoor shell (shell_interact)")

    def subtest(self, name: str) -> Subtest:
        """Context manager grouping the log of a named subtest."""
        return Subtest(name)

    def test_symbols(self) -> dict[str, Any]:
        """The symbols a test script sees."""
        symbols: dict[str, Any] = {
            "start_all": self.start_all,
            "test_script": self.test_script,
            "machines": self.machines,
            "machines_qemu": self.machines_qemu,
            "machines_nspawn": self.machines_nspawn,
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
            "BaseMachine": BaseMachine,
            "QemuMachine": QemuMachine,
            "NspawnMachine": NspawnMachine,
            "t": t,
            "debug": self.debug,
            "dump_machine_ssh": self.dump_machine_ssh,
            # The reference's name for QemuMachine.
            "Machine": Machine,
        }
        general = ", ".join(symbols)
        machines = symbols["machines"]
        for machine in machines:
            symbols[pythonize_name(machine.name)] = machine
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
                if isinstance(error, Exception):
                    self.debug.post_mortem(error, self._script_path)
                raise

    def run_tests(self) -> None:
        """Run the test script, then sync every machine that is up."""
        self.test_script()
        self.sync_all()

    if TYPE_CHECKING:
        @overload
        def create_machine(self, start_command: str, *, name: str | None = None,
                           keep_machine_state: bool = False) -> Machine: ...

        @overload
        def create_machine(self, start_command: dict[str, Any]) -> Machine: ...

    def create_machine(self, start_command: Any, *, name: str | None = None, keep_machine_state: bool = False,
                       **legacy: Any) -> Machine:
        """A machine (not started, not in machines_qemu, cleaned up at the end) from a NixOS start script
        (run-<name>-vm, as upstream: create_machine(start_command, *, name=None, keep_machine_state=False)),
        or, legacy, from a dict of options (startCommand, name, hda, qemuBinary, ..., keep_vm_state,
        allow_reboot)."""
        if isinstance(start_command, dict):
            if name is not None or keep_machine_state or legacy:
                raise TypeError("create_machine(dict) takes its options in the dict")
            return self._create_legacy_machine(start_command)
        # keep_vm_state: upstream's name for it until 2025.
        keep = bool(legacy.pop("keep_vm_state", keep_machine_state))
        if legacy:
            raise TypeError(f"create_machine() got an unexpected keyword argument '{next(iter(legacy))}'")
        if not isinstance(start_command, (str, os.PathLike)):
            raise TypeError(f"create_machine() takes a start script path or a dict, not {type(start_command).__name__}")
        if os.fspath(start_command).endswith("-nspawn"):
            # run-<name>-nspawn: a container, as in --start-scripts.
            container = NspawnMachine(out_dir=self.out_dir, tmp_dir=get_tmp_dir(), start_script=os.fspath(start_command),
                                      name=name, keep_machine_state=keep)
            self._created.append(container)
            return container  # type: ignore[return-value]
        command = NixStartScript(os.fspath(start_command))
        machine = Machine(out_dir=self.out_dir, tmp_dir=get_tmp_dir(), start_command=command,
                          name=name or command.machine_name, keep_vm_state=keep)
        self._created.append(machine)
        return machine

    def _create_legacy_machine(self, args: dict[str, Any]) -> Machine:
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
