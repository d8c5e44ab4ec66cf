"""VLANs (real vde_switch) and the driver's multi-machine features against
real `mini` guests: addresses and host names across a VLAN, a machine on two
VLANs, block/unblock, join_all, create_machine, serial_stdout_on/off."""

from conftest import guest_image


def test_three_machines_on_a_vlan_and_one_on_two(bed):
    hosts = {"a": "192.168.1.1", "b": "192.168.1.2", "c": "192.168.1.3"}
    a = bed.script("mini", "a", node=1, vlans=[1, 2], hosts=hosts, memory=256)
    b = bed.script("mini", "b", node=2, vlans=[1], hosts=hosts, memory=256)
    c = bed.script("mini", "c", node=3, vlans=[2], hosts={"a": "192.168.2.1"}, memory=256)
    r = bed.run_driver(
        """
start_all()
for m in (a, b):
    m.wait_until_succeeds("ip -o addr show eth1 | grep -q 192.168.1", timeout=60)
b.succeed("ping -c 1 -W 5 a")
a.succeed("ping -c 1 -W 5 192.168.1.2")
c.succeed("ping -c 1 -W 5 192.168.2.1")   # a's second VLAN
c.fail("ping -c 1 -W 2 192.168.1.2")      # b is not on VLAN 2
# A port on another machine: probed with the reference's `nc -z` (bounded
# by a guest-side timeout, as a connection elsewhere can hang).
b.succeed("(sleep 1; exec busybox nc -l -p 4321 >/dev/null 2>&1) >/dev/null 2>&1 &")
a.wait_for_open_port(4321, addr="b", timeout=60)
a.succeed("(echo bye | nc -N b 4321) >/dev/null 2>&1 || true")
a.wait_for_closed_port(4321, addr="192.168.1.2", timeout=60)
a.block()
b.fail("ping -c 1 -W 2 a")
a.unblock()
b.wait_until_succeeds("ping -c 1 -W 2 a", timeout=60)
assert [v.nr for v in vlans] == [1, 2]
""",
        args=["--vlans", "1", "2", "--start-scripts", a, b, c, "--"], timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stderr.count("kill vlan (pid ") == 2


def test_join_all_and_serial_stdout_switch(bed):
    script = bed.script("mini", "machine")
    r = bed.run_driver(
        """
serial_stdout_off()
machine.succeed("echo quiet-marker > /dev/ttyS0; sleep 1")
serial_stdout_on()
machine.succeed("echo loud-marker > /dev/ttyS0; sleep 1")
machine.execute("poweroff", check_return=False)
join_all()
assert not machine.booted
""",
        args=["--start-scripts", script, "--"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "machine # loud-marker" in r.stderr
    assert "machine # quiet-marker" not in r.stderr
    assert "wait for all VMs to finish" in r.stderr


def test_create_machine_with_start_command_and_legacy_arguments(bed):
    image = guest_image("mini")
    script = bed.script("mini", "fromscript")
    append = "console=ttyS0 console=tty0 panic=1 hostname=legacy rdinit=/init"
    r = bed.run_driver(
        f"""
m1 = create_machine({{"startCommand": {script!r}}})
assert m1.name == "fromscript"
assert m1.succeed("hostname") == "fromscript\\n"
m2 = create_machine({{
    "name": "legacy",
    "qemuBinary": "qemu-system-x86_64 -machine accel=tcg -nodefaults -vga std",
    "netBackendArgs": "restrict=on",
    "qemuFlags": "-kernel {image}/kernel -initrd {image}/initrd -append '{append}'",
}})
assert isinstance(m2.start_command, LegacyStartCommand)
assert "-netdev user,id=net0,restrict=on" in m2.start_command.cmd("m", "s")
assert m2.succeed("hostname") == "legacy\\n"
sc = Machine.create_startcommand({{"qemuBinary": "qemu-x", "cdrom": "/x.iso", "usb": "/u.img", "bios": "/b.bin",
                                   "hda": "/d.img", "hdaInterface": "scsi", "netFrontendArgs": "mac=52:54:00:00:00:01"}})
line = sc.cmd("m", "s")
for part in ["-cdrom /x.iso", "-bios /b.bin", "usb-storage,drive=usbdisk", "scsi-hd,drive=hda",
             "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01"]:
    assert part in line, (part, line)
""".replace("LegacyStartCommand", "__import__('test_driver.machine').machine.LegacyStartCommand"),
        timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("kill machine (pid ") == 2  # create_machine's machines are cleaned up
