"""QMP against a real `mini` guest: commands, errors, events, and the driver
using QMP itself (crash, screenshots, set_link)."""
import pytest

from conftest import Bed
from test_driver.errors import Error
from test_driver.qmp import QMPAPIError


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    m = Bed(tmp_path_factory.mktemp("qmp")).machine("mini")
    m.start()
    yield m
    m.release()


def test_qmp_socket_and_commands(machine):
    assert machine.qmp_path == machine.state_dir / "qmp" and machine.qmp_path.is_socket()
    status = machine.qmp_command("query-status")
    assert status["running"] is True and status["status"] == "running"
    names = {c["name"] for c in machine.qmp_command("query-commands")}
    assert {"screendump", "set_link", "quit"} <= names


def test_qmp_errors_are_clear(machine):
    with pytest.raises(QMPAPIError, match="QMP command no-such-command failed: CommandNotFound"):
        machine.qmp_command("no-such-command")
    assert issubclass(QMPAPIError, Error)
    with pytest.raises(QMPAPIError, match="GenericError|DeviceNotFound"):
        machine.qmp_command("set_link", {"name": "no-such-nic", "up": False})


def test_events_are_queued_apart_from_replies(machine, capfd):
    machine.send_monitor_command("stop")   # through the human monitor: QMP still sees the event
    event = machine.wait_for_qmp_event(lambda e: e["event"] == "STOP", timeout=30)
    assert event["event"] == "STOP" and "timestamp" in event
    machine.qmp_command("cont")
    assert machine.wait_for_qmp_event(lambda e: e["event"] == "RESUME", timeout=30)["event"] == "RESUME"
    assert "machine: QMP event: STOP" in capfd.readouterr().err
    with pytest.raises(Error, match="no matching QMP event within 1 seconds"):
        machine.wait_for_qmp_event(lambda e: e["event"] == "GUEST_PANICKED", timeout=1)
    assert machine.succeed("echo alive") == "alive\n"


def test_set_link_through_qmp(machine):
    # The guest sees its NIC lose and regain its carrier.
    iface = machine.succeed("ls /sys/class/net | grep -v '^lo$' | head -n 1").strip()
    assert iface, "the guest has no network interface"
    machine.qmp_command("set_link", {"name": "virtio-net-pci.0", "up": False})
    machine.wait_until_succeeds(f"test \"$(cat /sys/class/net/{iface}/carrier)\" = 0", timeout=30)
    machine.qmp_command("set_link", {"name": "virtio-net-pci.0", "up": True})
    machine.wait_until_succeeds(f"test \"$(cat /sys/class/net/{iface}/carrier)\" = 1", timeout=30)



def test_a_start_command_without_qmp_falls_back_to_the_human_monitor(tmp_path):
    # A start script that drops the driver's -qmp option: crash, screenshots
    # and block/unblock still work, through the human monitor.
    bed = Bed(tmp_path)
    real = bed.script("mini", "noqmp", vlans=[1])
    wrapper = bed.scripts / "wrap" / "run-noqmp-vm"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/bash\nargs=()\nwhile [ $# -gt 0 ]; do\n"
                       "  if [ \"$1\" = -qmp ]; then shift 2; continue; fi\n"
                       "  args+=(\"$1\"); shift\ndone\n"
                       f"exec {real} \"${{args[@]}}\"\n")
    wrapper.chmod(0o755)
    r = bed.run_driver(NO_QMP_SCRIPT, args=["-o", str(bed.out), "--vlans", "1", "--start-scripts", str(wrapper), "--"])
    assert r.returncode == 0, r.stderr[-4000:]
    assert "QMP is not available" in r.stderr
    assert "no-qmp-checked" in r.stdout
    assert (bed.out / "noqmpshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


NO_QMP_SCRIPT = """
from test_driver.errors import Error
noqmp.start()
assert noqmp.qmp_client is None
try:
    noqmp.qmp_command("query-status")
    raise AssertionError("qmp_command worked without QMP")
except Error as e:
    assert "QMP is not connected" in str(e), str(e)
noqmp.screenshot("noqmpshot")
carrier = "cat /sys/class/net/eth1/carrier"
noqmp.wait_until_succeeds(f"test $({carrier}) = 1", timeout=60)
noqmp.block()
noqmp.wait_until_succeeds(f"test $({carrier}) = 0", timeout=30)
noqmp.unblock()
noqmp.wait_until_succeeds(f"test $({carrier}) = 1", timeout=30)
pid = noqmp.pid
noqmp.crash()
assert not noqmp.booted
try:
    os.kill(pid, 0)
    raise AssertionError("QEMU still runs after crash()")
except ProcessLookupError:
    pass
print("no-qmp-checked")
"""
