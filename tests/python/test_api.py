"""What Python sees of the package, without booting a machine."""
import datetime
import inspect
import os

import pytest

import test_driver
from test_driver import driver as driver_mod
from test_driver import errors, logger, machine, polling_condition, vlan
from test_driver.machine import LegacyStartCommand, Machine, NixStartScript, StartCommand, retry
from test_driver.polling_condition import PollingCondition, PollingConditionFailed

# Upstream's (nixpkgs 2026, driver.py's test_symbols), in its order, then
# the reference's (2022) Machine, which upstream dropped.
UPSTREAM_SYMBOLS = [
    "start_all", "test_script", "machines", "machines_qemu", "machines_nspawn", "vlans", "driver", "log", "os",
    "create_machine", "subtest", "run_tests", "join_all", "retry", "serial_stdout_off", "serial_stdout_on",
    "polling_condition", "BaseMachine", "QemuMachine", "NspawnMachine", "t", "debug", "dump_machine_ssh",
]
REFERENCE_SYMBOLS = ["Machine"]


def test_reference_module_layout():
    assert machine.retry is retry
    assert logger.rootlog is test_driver.logger.rootlog
    assert driver_mod.Driver.__name__ == "Driver"
    assert vlan.VLan.__name__ == "VLan"
    assert issubclass(NixStartScript, StartCommand) and issubclass(LegacyStartCommand, StartCommand)
    assert polling_condition.PollingCondition is PollingCondition


def test_errors_are_exceptions():
    assert issubclass(errors.Error, Exception)
    assert issubclass(errors.MachineError, errors.Error)
    assert issubclass(errors.RequestedAssertionFailed, AssertionError)
    assert issubclass(errors.RequestedAssertionFailed, errors.Error)
    assert issubclass(PollingConditionFailed, Exception)


def test_every_public_method_has_a_docstring():
    for cls in (Machine, driver_mod.Driver, logger.Logger, PollingCondition, StartCommand, vlan.VLan):
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") or not callable(member):
                continue
            assert member.__doc__ and member.__doc__.strip(), f"{cls.__name__}.{name} has no docstring"
    assert retry.__doc__


def test_retry_contract():
    calls = []

    def fn(last_try):
        calls.append(last_try)
        return len(calls) == 3

    retry(fn, timeout=10)
    assert calls == [False, False, False]

    seen = []
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after [01]\.\d\d seconds \(timeout=1\)"):
        retry(lambda last: seen.append(last) or False, timeout=1)
    assert seen[-1] is True and seen.count(True) == 1


def test_retry_accepts_timedelta_and_propagates_python_exceptions():
    class Boom(Exception):
        pass

    def fn(_):
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        retry(fn, timeout=datetime.timedelta(seconds=5))


def test_polling_condition_description_sources():
    def documented():
        """the service is up"""

    def named():
        return True

    assert PollingCondition(documented).description == "the service is up"
    assert PollingCondition(named).description == "named"
    assert PollingCondition(named, description="given").description == "given"
    failing = PollingCondition(lambda: False, 0.0, "never")
    with pytest.raises(PollingConditionFailed, match="^Polling condition failed: never$"):
        failing.maybe_raise()
    raising = PollingCondition(lambda: 1 / 0, 0.0, "raises")
    assert raising.check() is False
    assert PollingCondition(lambda: None, 0.0, "none").check() is True


def test_start_commands():
    assert NixStartScript("/nix/store/abc/bin/run-web_server-vm").machine_name == "web_server"
    assert NixStartScript("qemu").machine_name == "machine"
    cmd = LegacyStartCommand(qemuBinary="qemu-system-x86_64", netBackendArgs="restrict=on")
    line = cmd.cmd("/s/monitor", "/s/shell")
    assert line.startswith("qemu-system-x86_64 -m 384 -netdev user,id=net0,restrict=on")
    assert "-monitor unix:/s/monitor -chardev socket,id=shell,path=/s/shell -no-reboot" in line
    env = StartCommand.build_environment("/state", "/shared")
    assert env["TMPDIR"] == "/state" and env["SHARED_DIR"] == "/shared" and env["USE_TMPDIR"] == "1"


def test_machine_attributes_without_booting(tmp_path):
    m = Machine(out_dir=tmp_path / "out", tmp_dir=tmp_path, start_command=NixStartScript("/x/run-a-vm"), name="a")
    assert repr(m) == "<Machine 'a'>"
    assert m.name == "a" and not m.booted and not m.connected and m.pid is None
    assert m.state_dir == tmp_path / "vm-state-a" and m.state_dir.is_dir()
    assert oct(m.state_dir.stat().st_mode & 0o777) == "0o700"
    assert m.shared_dir == tmp_path / "shared-xchg"
    assert m.monitor_path == m.state_dir / "monitor" and m.shell_path == m.state_dir / "shell"
    assert isinstance(m.start_command, NixStartScript)
    assert m.keep_vm_state is False and m.allow_reboot is False and m.callbacks == []
    assert not m.is_up()


def test_state_dir_wiped_unless_kept(tmp_path):
    cmd = NixStartScript("/x/run-a-vm")
    m = Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=cmd, name="a")
    (m.state_dir / "disk").write_text("x")
    Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=cmd, name="a", keep_vm_state=True)
    assert (m.state_dir / "disk").exists()
    Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=cmd, name="a")
    assert not (m.state_dir / "disk").exists()


def test_missing_start_script_is_named(tmp_path):
    m = Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=NixStartScript(str(tmp_path / "run-gone-vm")),
                name="gone")
    with pytest.raises(errors.Error, match=r"machine 'gone': cannot run the start command .*run-gone-vm"):
        m.start()
    assert m.pid is None and not m.booted


def test_driver_symbols_match_reference(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with driver_mod.Driver([], [], "", tmp_path) as d:
        symbols = d.test_symbols()
    assert list(symbols) == UPSTREAM_SYMBOLS + REFERENCE_SYMBOLS
    assert symbols["os"] is os and symbols["retry"] is retry and symbols["driver"] is d
    # BaseMachine is the real base class now, as upstream's.
    assert symbols["QemuMachine"] is Machine and issubclass(Machine, symbols["BaseMachine"])
    assert symbols["BaseMachine"] is not Machine and symbols["machines_qemu"] == []
    assert symbols["machines_nspawn"] == [] and symbols["machines_qemu"] is d.machines_qemu
    assert issubclass(symbols["NspawnMachine"], symbols["BaseMachine"])
    # A container machine from its start script's name (run-NAME-nspawn); made, not started.
    c = symbols["NspawnMachine"](out_dir=tmp_path, tmp_dir=tmp_path, start_script=str(tmp_path / "run-box-nspawn"))
    assert c.name == "box" and not c.booted and repr(c) == "<NspawnMachine 'box'>"
    assert c.root_dir == tmp_path / "nspawn-state-box" / "root" and c.pid is None and c.init_pid is None
    symbols["debug"].breakpoint()  # no --debug-hook-attach: does nothing, as upstream's DebugNop
    assert type(symbols["debug"]).__name__ == "DebugNop"
    symbols["dump_machine_ssh"]()  # no SSH backdoor: a warning, as upstream prints nothing
    with pytest.raises(errors.RequestedAssertionFailed, match="1 != 2"):
        symbols["t"].assertEqual(1, 2)
    symbols["t"].assertIn("a", "abc")
    assert "additionally exposed symbols" in capsys.readouterr().out


def fake_start_script(directory, name):
    """A start script run-<name>-vm that is never started."""
    path = directory / f"run-{name}-vm"
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_machine_names_as_upstreams_node_name_test(tmp_path, monkeypatch, capsys):
    # nixos/tests/nixos-test-driver/node-name.nix: nodes ok, one_two and a-b;
    # the script says ok, one_two and a_b (upstream's pythonize_name).
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    scripts = [fake_start_script(tmp_path, name) for name in ("ok", "one_two", "a-b")]
    with driver_mod.Driver(scripts, [], "", tmp_path) as d:
        symbols = d.test_symbols()
        assert [m.name for m in d.machines] == ["a-b", "ok", "one_two"]
        assert symbols["a_b"].name == "a-b" and symbols["ok"].name == "ok" and symbols["one_two"].name == "one_two"
        assert "a-b" not in symbols and "machine" not in symbols
    assert "additionally exposed symbols:\n    a-b, ok, one_two," in capsys.readouterr().out
    assert [driver_mod.pythonize_name(n) for n in ("a-b", "1st", "x.y", "caf\u00e9", "_9")] == \
        ["a_b", "_st", "x_y", "caf_", "_9"]


def test_driver_rejects_machine_names_that_clash(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    (tmp_path / "b").mkdir()
    clash = [fake_start_script(tmp_path, "a-b"), fake_start_script(tmp_path / "b", "a_b")]
    with pytest.raises(errors.Error, match="the machine names 'a-b' and 'a_b' are both the test script's symbol a_b"):
        driver_mod.Driver(clash, [], "", tmp_path)
    with pytest.raises(errors.Error, match="must be unique"):
        driver_mod.Driver(["/a/run-x-vm", "/b/run-x-vm"], [], "", tmp_path)


def test_subtest_logs_and_reraises(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    d = driver_mod.Driver([], [], "", tmp_path)
    with pytest.raises(ValueError):
        with d.subtest("broken"):
            raise ValueError("nope")
    assert 'Test "broken" failed with error: "nope"' in capfd.readouterr().err


def test_polling_condition_decorator_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    d = driver_mod.Driver([], [], "", tmp_path)
    calls = []

    @d.polling_condition
    def plain():
        calls.append(1)

    @d.polling_condition(seconds_interval=0.0, description="never holds")
    def failing():
        return False

    with plain:
        assert len(d.polling_conditions) == 1
        d.check_polling_conditions()
    assert calls == [1] and d.polling_conditions == []
    with failing:
        with pytest.raises(PollingConditionFailed, match="never holds"):
            d.check_polling_conditions()


def test_logger_nested_is_a_context_manager(capfd):
    with logger.rootlog.nested("outer step", {"machine": "m"}):
        logger.rootlog.info("inside")
    err = capfd.readouterr().err
    assert "m: outer step" in err and "inside" in err and "(finished: outer step, in " in err


def test_start_all_names_every_machine_that_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    d = driver_mod.Driver([str(tmp_path / "run-one-vm"), str(tmp_path / "run-two-vm")], [], "", tmp_path)
    with pytest.raises(errors.Error) as raised:
        d.start_all()
    message = str(raised.value)
    assert message.startswith("machines failed to start:")
    assert "one: machine 'one': cannot run the start command" in message
    assert "two: machine 'two': cannot run the start command" in message
    d.cleanup()
