"""Upstream's 2026 driver API (issue 13) against real guests: a writable
`connected` after a reboot the script triggers, create_machine's keyword
form and machines a script adds to machines_qemu, wait_until_*'s
attempt_timeout, wait_for_unit_active_state, machine.qmp_client, and
polling conditions' interval and wait()."""
import time

import pytest

from conftest import Bed, gone
from test_driver import errors
from test_driver.driver import Driver


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    return Bed(tmp_path_factory.mktemp("api2026"))


@pytest.fixture(scope="module")
def mini(bed):
    m = bed.machine("mini", name="mini")
    m.connect()
    yield m
    m.release()


# --- 1. connected, writable

def test_connected_false_after_a_reboot_reconnects_to_the_new_boot(bed):
    m = bed.machine("mini", name="rebooter")
    try:
        with pytest.raises(errors.Error, match="not running"):
            m.connected = True
        m.start(allow_reboot=True)
        first = m.succeed("cat /proc/sys/kernel/random/boot_id").strip()
        assert m.connected
        # The mini guest's busybox init reboots on `reboot`; QEMU without
        # -no-reboot resets the machine and the backdoor starts a new shell.
        m.execute("reboot", check_return=False)
        m.connected = False
        assert not m.connected and m.booted
        second = m.succeed("cat /proc/sys/kernel/random/boot_id").strip()
        assert m.connected
        assert first and second and first != second, (first, second)
        # The same QEMU went on running.
        assert m.succeed("echo still") == "still\n"
    finally:
        m.release()


# --- 2. create_machine(start_command, *, name, keep_machine_state); machines_qemu

def test_create_machine_keyword_form_and_appended_machines_are_cleaned_up(bed, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(bed.tmp))
    base = bed.script("mini", "base")
    extra = bed.script("mini", "extra")
    added = bed.script("mini", "added")
    with Driver([base], [], "", bed.out) as d:
        assert [m.name for m in d.machines_qemu] == ["base"] and d.machines_nspawn == []
        created = d.create_machine(extra, name="renamed", keep_machine_state=True)
        assert created.name == "renamed" and created.keep_vm_state
        assert created not in d.machines_qemu  # as upstream: not a machine of the test
        assert d.create_machine(extra).name == "extra"  # named after run-<name>-vm
        legacy = d.create_machine({"startCommand": extra, "name": "legacy"})
        assert legacy.name == "legacy"
        with pytest.raises(TypeError):
            d.create_machine(extra, keep_state=True)

        from test_driver.machine import Machine, NixStartScript
        appended = Machine(out_dir=bed.out, tmp_dir=bed.tmp, start_command=NixStartScript(added), name="added")
        d.machines_qemu.append(appended)
        assert [m.name for m in d.machines] == ["added", "base"]  # sorted by name, as upstream
        symbols = d.test_symbols()
        assert symbols["added"] is appended and symbols["machines_qemu"] is d.machines_qemu
        d.start_all()  # starts the appended machine too
        assert appended.booted and d.machines_qemu[0].booted
        created.start()
        pids = [appended.pid, d.machines_qemu[0].pid, created.pid]
        assert all(pids) and not any(gone(p, wait=0) for p in pids)
    for pid in pids:
        assert gone(pid), f"QEMU {pid} survived the driver's cleanup"


def test_create_machine_in_a_script_then_cleanup(bed):
    extra = bed.script("mini", "scripted")
    pidfile = bed.root / "scripted.pid"
    r = bed.run_driver(f"""
m = create_machine({extra!r}, name="scripted")
assert m.name == "scripted" and m not in machines_qemu
m.start()
open({str(pidfile)!r}, "w").write(str(m.pid))
""")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "legacy create_machine" not in r.stdout + r.stderr
    assert gone(int(pidfile.read_text())), "create_machine's QEMU survived the run"


# --- 4. attempt_timeout

def test_attempt_timeout_bounds_each_try_and_timeout_the_wait(mini):
    mini.succeed("rm -f /tmp/attempts")
    started = time.monotonic()
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after \d+\.\d\d seconds \(timeout=8\)"):
        mini.wait_until_succeeds("echo attempt >> /tmp/attempts; exec sleep 600 > /dev/null", timeout=8,
                                 attempt_timeout=1)
    elapsed = time.monotonic() - started
    attempts = int(mini.succeed("wc -l < /tmp/attempts"))
    assert attempts >= 3, f"tried {attempts} times"
    assert elapsed < 8 + 5, elapsed
    # A try killed by its attempt_timeout fails (status 124): that is what
    # wait_until_fails waits for.
    started = time.monotonic()
    mini.wait_until_fails("sleep 600", timeout=60, attempt_timeout=1)
    assert time.monotonic() - started < 20
    assert mini.wait_until_succeeds("echo ok", attempt_timeout=5) == "ok\n"
    with pytest.raises(errors.Error, match="attempt_timeout must be positive"):
        mini.wait_until_succeeds("true", attempt_timeout=0)


# --- 5. qmp_client

def test_qmp_client_send_and_its_error(bed):
    from test_driver.machine.qmp import QMPAPIError
    from test_driver.qmp import QMPAPIError as OldName
    assert OldName is QMPAPIError
    m = bed.machine("mini", name="qmp")
    try:
        assert m.qmp_client is None  # not started
        m.start()
        client = m.qmp_client
        assert client is not None
        with pytest.raises(QMPAPIError) as caught:
            client.send("this-command-does-not-exist")
        assert caught.value.class_name == "CommandNotFound"
        assert caught.value.description and caught.value.transaction_id is None
        assert isinstance(caught.value, errors.Error)
        reply = client.send("query-status")
        assert reply["return"]["status"] in ("running", "prelaunch")
        assert isinstance(client.send("query-name", {})["return"], dict)
    finally:
        m.release()
    assert m.qmp_client is None


# --- 6. polling conditions: the interval, wait()

def test_polling_condition_interval_and_wait(bed, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(bed.tmp))
    with Driver([bed.script("mini", "poller")], [], "", bed.out) as d:
        m = d.machines_qemu[0]
        m.connect()
        calls = []

        @d.polling_condition(seconds_interval=2)
        def counted():
            calls.append(time.monotonic())
            return True

        started = time.monotonic()
        with counted:
            while time.monotonic() - started < 5:
                m.succeed("true")
        assert 2 <= len(calls) <= 4, calls
        gaps = [b - a for a, b in zip(calls, calls[1:])]
        assert all(g >= 1.9 for g in gaps), gaps

        m.succeed("rm -f /tmp/ready; (sleep 2; touch /tmp/ready) >/dev/null 2>&1 &")

        @d.polling_condition(seconds_interval=60)
        def ready():
            "the file is there"
            m.succeed("test -e /tmp/ready")

        started = time.monotonic()
        ready.wait(timeout=30)  # checked each try, whatever the interval
        assert 1 < time.monotonic() - started < 30

        @d.polling_condition
        def never():
            return False

        with pytest.raises(errors.RequestedAssertionFailed, match=r"timed out after .* \(timeout=1\)"):
            never.wait(timeout=1)


# --- 4. wait_for_unit_active_state, get_unit_property (systemd guest)

@pytest.fixture(scope="module")
def systemd(bed):
    m = bed.machine("systemd", name="sd")
    m.connect()
    m.wait_for_unit("multi-user.target", timeout=300)
    yield m
    m.release()


def test_wait_for_unit_active_state_through_a_units_states(systemd):
    m = systemd
    unit = "td-states.service"
    m.wait_for_unit_active_state(unit, "inactive", timeout=30)
    m.succeed(f"systemd-run --unit={unit} --no-block -p ExecStartPre='/bin/sleep 4' /bin/sleep 600")
    m.wait_for_unit_active_state(unit, "activating", timeout=30)
    m.wait_for_unit_active_state(unit, "active", timeout=30)
    assert m.get_unit_property(unit, "ActiveState") == "active"
    m.succeed(f"systemctl stop --no-block {unit}")
    m.wait_for_unit_active_state(unit, "inactive", timeout=30)
    # failed is a state to wait for, not an error (unlike wait_for_unit)
    m.succeed("systemd-run --unit=td-goes-failed --no-block /bin/sh -c 'sleep 2; exit 3'")
    m.wait_for_unit_active_state("td-goes-failed.service", "failed", timeout=30)
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after .* \(timeout=2\)"):
        m.wait_for_unit_active_state(unit, "active", timeout=2)
    with pytest.raises(errors.Error, match='"running" is not a unit state'):
        m.wait_for_unit_active_state(unit, "running", timeout=30)


def test_get_unit_property_failure_is_an_assertion(systemd):
    with pytest.raises(errors.RequestedAssertionFailed,
                       match='retrieving systemctl property "ActiveState" for unit "x.service" under user "nobody-here"'):
        systemd.get_unit_property("x.service", "ActiveState", user="nobody-here")
