"""systemd methods, the X11 helpers and user units against one real
`systemd` guest (Debian bookworm rootfs booted from an initramfs, NixOS-like
backdoor.service, user alice with lingering `systemd --user`)."""

import time
import pytest

from conftest import Bed, fetch_through_forwarded_port
from test_driver import errors


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    m = Bed(tmp_path_factory.mktemp("systemd")).machine("systemd")
    m.connect()
    yield m
    m.release()


def test_wait_for_unit_and_info(machine):
    machine.wait_for_unit("multi-user.target", timeout=120)
    info = machine.get_unit_info("backdoor.service")
    assert info["ActiveState"] == "active"
    assert info["Id"] == "backdoor.service"
    assert "ExecStart" in info and "=" in info["ExecStart"]  # values keep their '='
    assert machine.get_unit_property("backdoor.service", "ActiveState") == "active"
    machine.require_unit_state("backdoor.service")
    with pytest.raises(errors.RequestedAssertionFailed, match="Expected unit ‘backdoor.service’ to to be in state 'inactive'"):
        machine.require_unit_state("backdoor.service", "inactive")
    with pytest.raises(errors.Error, match="has no property NoSuchProperty"):
        machine.get_unit_property("backdoor.service", "NoSuchProperty")


def test_failed_and_inactive_units_raise(machine):
    machine.succeed("systemd-run --unit=td-fails --service-type=oneshot false || true")
    with pytest.raises(errors.RequestedAssertionFailed, match='unit "td-fails.service" reached state "failed"'):
        machine.wait_for_unit("td-fails.service", timeout=60)
    with pytest.raises(errors.RequestedAssertionFailed, match='unit "td-never.service" is inactive and there are no pending jobs'):
        machine.wait_for_unit("td-never.service", timeout=60)


def last_pid(machine) -> int:
    """The guest's most recently started process (the fifth field of /proc/loadavg)."""
    return int(machine.succeed("read -r _ _ _ _ p </proc/loadavg; echo $p").strip())


def test_wait_for_unit_sleeps_on_systemds_signal(machine):
    # A unit that takes 4 s to turn active. The wait is one guest command
    # asleep on `busctl monitor` (a handful of processes: systemctl at the
    # start and at 0.5, 1.5 and 3.5 s, busctl, the unit's own); per-try
    # `systemctl show` probing would start ~3 a try, 60 or more in 4 s.
    machine.succeed("printf '%s\\n' '[Service]' 'ExecStartPre=/bin/sleep 4' 'ExecStart=/bin/sleep infinity' "
                    "> /run/systemd/system/td-slow.service && systemctl daemon-reload")
    machine.succeed("systemctl start --no-block td-slow.service")
    before = last_pid(machine)
    machine.wait_for_unit("td-slow.service", timeout=120)
    started = last_pid(machine) - before
    assert machine.succeed("systemctl is-active td-slow.service").strip() == "active"
    assert started <= 35, f"{started} processes started during the wait"
    # Stopped, it is inactive with no job: the signal path says so at once.
    machine.succeed("systemctl stop td-slow.service")
    with pytest.raises(errors.RequestedAssertionFailed, match='"td-slow.service" is inactive and there are no pending jobs'):
        machine.wait_for_unit("td-slow.service", timeout=60)
    # A unit that fails while the wait sleeps.
    machine.succeed("systemd-run --no-block --unit=td-fails-late --service-type=oneshot sh -c 'sleep 2; false'")
    with pytest.raises(errors.RequestedAssertionFailed, match='"td-fails-late.service" reached state "failed"'):
        machine.wait_for_unit("td-fails-late.service", timeout=60)


def test_start_stop_wait_for_job(machine):
    machine.succeed(
        "printf '[Service]\\nExecStart=/usr/bin/python3 -m http.server 8000 --directory /tmp/www\\n' > /etc/systemd/system/web.service",
        "mkdir -p /tmp/www && echo 'served by python' > /tmp/www/index.html",
        "systemctl daemon-reload",
    )
    status, _ = machine.start_job("web.service")
    assert status == 0
    machine.wait_for_job("web.service")
    machine.wait_for_open_port(8000, timeout=60)
    assert fetch_through_forwarded_port(machine, 8000, "/index.html") == b"served by python\n"
    status, _ = machine.stop_job("web.service")
    assert status == 0
    machine.wait_for_closed_port(8000, timeout=60)
    status, out = machine.systemctl("is-active web.service")
    assert status != 0 and out.strip() == "inactive"


def test_user_units_through_su(machine):
    machine.wait_for_unit("user@1000.service", timeout=120)
    machine.succeed(
        "mkdir -p ~alice/.config/systemd/user",
        "printf '[Service]\\nExecStart=/bin/sleep 1000\\n' > ~alice/.config/systemd/user/napper.service",
        "chown -R alice: ~alice/.config",
    )
    status, _ = machine.systemctl("daemon-reload", user="alice")
    assert status == 0
    status, _ = machine.start_job("napper.service", user="alice")
    assert status == 0
    machine.wait_for_unit("napper.service", user="alice", timeout=60)
    assert machine.get_unit_info("napper.service", user="alice")["ActiveState"] == "active"
    # daemon-reload reaches alice's manager: the running unit's changed file
    # is seen only after it.
    machine.succeed("sed -i 's/sleep 1000/sleep 1001/' ~alice/.config/systemd/user/napper.service")
    assert "sleep 1000" in machine.get_unit_property("napper.service", "ExecStart", user="alice")
    assert machine.get_unit_property("napper.service", "NeedDaemonReload", user="alice") == "yes"
    status, _ = machine.systemctl("daemon-reload", user="alice")
    assert status == 0
    assert machine.get_unit_property("napper.service", "NeedDaemonReload", user="alice") == "no"
    assert "sleep 1001" in machine.get_unit_property("napper.service", "ExecStart", user="alice")
    status, _ = machine.stop_job("napper.service", user="alice")
    assert status == 0
    assert machine.get_unit_info("napper.service", user="alice")["ActiveState"] == "inactive"


def test_dump_tty_contents_goes_to_the_journal(machine):
    # A line only tty1's screen has: typed there, not in any boot log.
    marker = "ttydump-" + str(time.monotonic_ns())
    machine.succeed(f"printf '%s\\n' {marker} > /dev/tty1")
    machine.fail(f"journalctl -b | grep -q {marker}")
    machine.dump_tty_contents("1")
    machine.wait_until_succeeds(f"journalctl -b | grep -q {marker}", timeout=60)
