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
