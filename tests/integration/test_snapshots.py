"""Snapshots against real `mini` guests: machine.save_snapshot and
restore_snapshot in a test (channels, clock, randomness, 9p shares, VLAN
traffic between two machines after a restore), a 9p share the driver does not
own refused with a clear error, and the boot cache across runs (miss, hit,
a corrupt entry)."""
import glob
import os
import time

import pytest

from conftest import driver_exe  # noqa: F401  (the executable must exist)


def test_save_and_restore_in_a_test(bed):
    script = bed.script("mini", "machine")
    marker = bed.tmp / "shared-xchg" / "from-host"
    r = bed.run_driver(
        f"""
import time
machine.succeed("echo before > /tmp/marker")
machine.save_snapshot("base")
assert machine.snapshots == ["base"]
# The driver's 9p shares are mounted again after the save.
open({str(marker)!r}, "w").write("host-1")
assert machine.succeed("cat /tmp/shared/from-host") == "host-1"
machine.succeed("echo after > /tmp/marker; echo guest > /tmp/xchg/x")
old_pid = machine.pid
time.sleep(3)  # the guest's clock would lag this much without the driver
machine.restore_snapshot("base")
assert machine.pid != old_pid
assert machine.succeed("cat /tmp/marker") == "before\\n"
# Every channel is live: shell, monitor, QMP, serial console.
assert "running" in machine.send_monitor_command("info status")
assert machine.qmp_command("query-status")["status"] == "running"
machine.succeed("echo serial-after-restore > /dev/ttyS0")
machine.wait_for_console_text("serial-after-restore", timeout=30)
# The clock is the host's.
lag = time.time() - float(machine.succeed("date +%s.%N"))
assert abs(lag) < 1.5, lag
# The shares work both ways.
assert machine.succeed("cat /tmp/shared/from-host") == "host-1"
machine.succeed("echo guest-2 > /tmp/shared/from-guest")
assert open({str(marker.parent / "from-guest")!r}).read() == "guest-2\\n"
# Randomness is reseeded: vmgenid is bound in the guest, and two restores of
# one state read different random bytes.
machine.succeed("test -e /sys/bus/acpi/drivers/vmgenid/QEMUVGID:00")
first = machine.succeed("head -c 16 /dev/urandom | od -An -tx1")
guid1 = machine.qmp_command("query-vm-generation-id")["guid"]
machine.restore_snapshot("base")
second = machine.succeed("head -c 16 /dev/urandom | od -An -tx1")
assert first != second, first
assert machine.qmp_command("query-vm-generation-id")["guid"] != guid1
# Subtests, each from the same state.
for i in range(2):
    with subtest(f"from base {{i}}"):
        machine.restore_snapshot("base")
        assert machine.succeed("cat /tmp/marker") == "before\\n"
        machine.succeed(f"echo {{i}} > /tmp/marker")
# A restore after a shutdown starts QEMU again.
machine.shutdown()
machine.restore_snapshot("base")
assert machine.succeed("cat /tmp/marker") == "before\\n"
try:
    machine.restore_snapshot("nope")
    raise AssertionError("restored a snapshot that does not exist")
except Exception as e:
    assert 'no snapshot named "nope"' in str(e) and "base" in str(e), e
try:
    machine.save_snapshot("../x")
    raise AssertionError("took a path as a snapshot name")
except Exception as e:
    assert "is not a snapshot name" in str(e), e
""",
        args=["--start-scripts", script, "--"], timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "saved the guest's state to" in r.stderr
    # Removed at cleanup.
    assert not (bed.tmp / "vm-state-machine" / "snapshots").exists()


def test_vlan_traffic_after_a_restore(bed):
    hosts = {"a": "192.168.1.1", "b": "192.168.1.2"}
    a = bed.script("mini", "a", node=1, vlans=[1], hosts=hosts, memory=256)
    b = bed.script("mini", "b", node=2, vlans=[1], hosts=hosts, memory=256)
    r = bed.run_driver(
        """
start_all()
for m in (a, b):
    m.wait_until_succeeds("ip -o addr show eth1 | grep -q 192.168.1", timeout=60)
b.succeed("ping -c 1 -W 5 a")
a.save_snapshot("net")
b.save_snapshot("net")
a.succeed("echo changed > /tmp/state")
a.restore_snapshot("net")
a.fail("test -e /tmp/state")
b.succeed("ping -c 1 -W 5 a")
a.succeed("ping -c 1 -W 5 b")
b.restore_snapshot("net")
a.succeed("ping -c 1 -W 5 b")
# TCP too, both ways through the switch.
b.succeed("(busybox nc -l -p 4321 > /tmp/got 2>&1 &) ; sleep 0.2")
a.succeed("echo over-vlan | nc -N b 4321 || echo over-vlan | busybox nc b 4321")
b.wait_until_succeeds("grep -q over-vlan /tmp/got", timeout=30)
""",
        args=["--vlans", "1", "--start-scripts", a, b, "--"], timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]


def test_a_9p_share_the_driver_does_not_own_is_refused(bed):
    from test_driver.errors import Error
    store = bed.root / "store"
    store.mkdir()
    (store / "hello").write_text("from the host's store")
    script = bed.script("mini", "machine")
    # A start script with one more 9p export, as a NixOS VM's host store.
    text = open(script).read().replace(
        "-nodefaults", f"-nodefaults -virtfs local,path={store},security_model=none,mount_tag=nix-store", 1)
    store_script = bed.scripts / "run-machine-vm"
    store_script.write_text(text)
    from test_driver.machine import Machine, NixStartScript
    machine = Machine(out_dir=bed.out, tmp_dir=bed.tmp, start_command=NixStartScript(str(store_script)),
                      name="machine")
    try:
        # Exported but not mounted: no obstacle.
        machine.save_snapshot("unmounted")
        machine.succeed("mkdir -p /nix/.ro-store && mount -t 9p -o trans=virtio,version=9p2000.L,ro nix-store "
                        "/nix/.ro-store")
        assert machine.succeed("cat /nix/.ro-store/hello") == "from the host's store"
        tic = time.monotonic()
        with pytest.raises(Error) as raised:
            machine.save_snapshot("mounted")
        assert time.monotonic() - tic < 30
        message = str(raised.value)
        for part in ("'nix-store'", "/nix/.ro-store", str(store), "virtualisation.useNixStoreImage"):
            assert part in message, message
        # The guest runs on, its shares as they were.
        assert machine.succeed("grep -c ' 9p ' /proc/mounts") == "3\n"
        assert machine.succeed("cat /nix/.ro-store/hello") == "from the host's store"
        assert machine.snapshots == ["unmounted"]
        machine.restore_snapshot("unmounted")
        machine.fail("test -e /nix/.ro-store/hello")
    finally:
        machine.release()


def test_boot_cache_miss_hit_and_a_corrupt_entry(bed):
    script = bed.script("mini", "machine")
    cache = bed.root / "boot-cache"
    probe = """
import time
tic = time.monotonic()
start_all()
uptime = machine.succeed("cat /proc/uptime").split()[0]
print("FIRST_COMMAND %.3f" % (time.monotonic() - tic))
print("UPTIME", uptime)
print("OUTCOME", machine.boot_cache_outcome)
machine.succeed("test -d /tmp/shared/. && grep -q ' /tmp/xchg 9p ' /proc/mounts")
"""

    def run(args=(), env=None):
        r = bed.run_driver(probe, args=[*args, "--start-scripts", script, "--"], env=env)
        assert r.returncode == 0, r.stderr[-4000:]
        fields = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line[:1].isupper() and " " in line)
        return fields, r.stderr

    first, log = run(["--boot-cache", str(cache)])
    assert first["OUTCOME"] == "miss", log[-3000:]
    states = glob.glob(str(cache / "*.state.zst"))
    assert len(states) == 1 and os.path.exists(states[0][: -len(".state.zst")] + ".meta")
    assert not glob.glob(str(cache / "*.tmp-*"))

    def restored(fields):
        # A booted guest has been up for less time than the run took to
        # reach its first command; a restored one for longer (its boot).
        return float(fields["UPTIME"]) > float(fields["FIRST_COMMAND"]) + 1

    assert not restored(first), first

    # A hit (through the environment variable this time): the saved boot.
    second, log = run(env=bed.env(TEST_DRIVER_BOOT_CACHE=str(cache)))
    assert second["OUTCOME"] == "hit", log[-3000:]
    assert restored(second), second
    assert float(second["FIRST_COMMAND"]) < float(first["FIRST_COMMAND"])

    # A corrupt entry: detected before the guest runs it, discarded, booted.
    with open(states[0], "r+b") as f:
        f.seek(os.path.getsize(states[0]) // 2)
        f.write(b"\0corrupt\0" * 64)
    third, log = run(["--boot-cache", str(cache)])
    assert third["OUTCOME"] == "miss", log[-3000:]
    assert "is unusable, discarding it and booting" in log
    assert not restored(third), third
    # ... and saved again.
    fourth, log = run(["--boot-cache", str(cache)])
    assert fourth["OUTCOME"] == "hit", log[-3000:]
    assert restored(fourth), fourth
