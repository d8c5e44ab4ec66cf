"""systemd-nspawn containers (NspawnMachine) against the real `container`
image (tests/guests/build container): systemd as PID 1 inside, a root shell
through nsenter, the console in the log, a container and a `mini` VM on one
vde_switch VLAN, and the faults: a container killed from outside, no root,
no systemd-nspawn; and that nothing is left on the host afterwards (no
process, mount, cgroup or network interface)."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import gone, guest_image

CGROUP_ROOTS = [Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup")]


def host_links() -> set:
    out = subprocess.run(["ip", "-o", "link"], check=True, stdout=subprocess.PIPE, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def our_cgroups() -> list:
    found = []
    for root in CGROUP_ROOTS:
        if root.is_dir():
            found += [str(p) for p in root.glob("td-nspawn-*")]
    return found


def mounts_under(path: Path) -> list:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if f" {path}" in line]


@pytest.fixture
def host_state():
    """What the host has before the test; after it, checks that the test left
    no container process, cgroup, mount or interface behind."""
    links = host_links()
    yield
    assert our_cgroups() == [], "a container's cgroup was left behind"
    assert host_links() == links, "a network interface was left behind"
    leftover = subprocess.run(["pgrep", "-f", "systemd-nspawn --quiet --register=no"], stdout=subprocess.PIPE,
                              text=True).stdout
    assert leftover == "", f"systemd-nspawn still runs: {leftover}"


def test_a_container_runs_commands_systemd_files_and_its_console(bed, host_state):
    script = bed.script("container", "c1")
    hello = bed.root / "from-host.txt"
    hello.write_text("from the host\n")
    r = bed.run_driver(
        f"""
import json, time
t = time.monotonic()
c1.start()
assert c1.booted and not c1.connected
assert c1.succeed("echo hi") == "hi\\n"
first = time.monotonic() - t
assert c1.connected and c1.init_pid is not None
assert c1.succeed("hostname").strip() == "c1"
assert c1.succeed("cat /proc/1/comm").strip() == "systemd"     # systemd is PID 1 inside
assert c1.succeed("id -u").strip() == "0"
assert c1.succeed("pwd").strip() == "/tmp"
assert c1.execute("exit 3") == (3, "")
c1.fail("false")
c1.wait_for_unit("multi-user.target", timeout=60)
assert c1.get_unit_property("systemd-journald.service", "ActiveState") == "active"
c1.succeed("systemctl start getty.target")
c1.succeed("su -l alice -c 'XDG_RUNTIME_DIR=/run/user/1000 systemctl --user is-system-running --wait' || true")
c1.wait_for_unit("default.target", user="alice", timeout=60)
c1.succeed("echo hello > /hello.txt")
c1.copy_from_machine("/hello.txt")
c1.copy_from_host({str(hello)!r}, "/root/from-host.txt")
assert c1.succeed("cat /root/from-host.txt") == "from the host\\n"
c1.succeed("echo console-marker > /dev/console")
c1.wait_for_console_text("console-marker", timeout=30)
c1.succeed("(sleep 1; touch /tmp/later) >/dev/null 2>&1 &")
c1.wait_for_file("/tmp/later", timeout=30)
t = time.monotonic()
for _ in range(20):
    c1.succeed("true")
per_command = (time.monotonic() - t) / 20
assert machines_nspawn == [c1] and machines_qemu == [] and machines == [c1]
assert isinstance(c1, NspawnMachine) and isinstance(c1, BaseMachine)
print(json.dumps({{"first": first, "per_command": per_command}}))
c1.shutdown()
assert not c1.booted
""",
        args=["-o", str(bed.out), "--start-scripts", script, "--"], timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (bed.out / "hello.txt").read_text() == "hello\n"
    # the console (systemd's messages and the journal) is in the log, as a VM's serial lines
    assert re.search(r"^c1 # .*Reached target .*Multi-User System", r.stderr, re.M), r.stderr[-3000:]
    assert "c1 # console-marker" in r.stderr
    assert "container stopped (start script: exit code 0)" in r.stderr
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    print(figures)


def test_a_container_killed_from_outside_is_a_machine_error_within_a_second(bed, host_state):
    script = bed.script("container", "c1")
    r = bed.run_driver(
        """
import os, signal, threading, time
c1.succeed("true")
init = c1.init_pid
threading.Timer(1.0, lambda: os.kill(init, signal.SIGKILL)).start()
t = time.monotonic()
try:
    c1.succeed("sleep 60")
except Exception as e:
    took = time.monotonic() - t - 1.0
    print("ERROR", type(e).__name__, took, str(e).splitlines()[0])
c1.wait_for_shutdown(timeout=10)
assert not c1.booted
""",
        args=["--start-scripts", script, "--"], timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    line = [l for l in r.stdout.splitlines() if l.startswith("ERROR")][0]
    _, kind, took, message = line.split(" ", 3)
    assert kind == "MachineError"
    assert float(took) < 1.0, line
    assert "machine 'c1'" in message and "the container stopped" in message, message


def test_crash_and_restart_start_a_fresh_container(bed, host_state):
    script = bed.script("container", "c1")
    r = bed.run_driver(
        """
c1.succeed("echo before > /root/mark")
first = c1.init_pid
c1.crash()
assert not c1.booted
c1.start()
assert c1.succeed("cat /root/mark") == "before\\n"   # the root layer is the machine's state
assert c1.init_pid != first
""",
        args=["--start-scripts", script, "--"], timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "forced crash" in r.stderr


def test_a_container_and_a_vm_on_one_vlan_reach_each_other_and_nothing_else(bed, host_state):
    hosts = {"vm": "192.168.1.1", "ct": "192.168.1.2", "ct2": "192.168.2.3"}
    vm = bed.script("mini", "vm", node=1, vlans=[1], hosts=hosts, memory=256)
    ct = bed.script("container", "ct", node=2, vlans=[1], hosts=hosts)
    ct2 = bed.script("container", "ct2", node=3, vlans=[2], hosts=hosts)
    r = bed.run_driver(
        """
start_all()
ct.succeed("ip -o addr show eth1 | grep -q 192.168.1.2/24")
vm.wait_until_succeeds("ip -o addr show eth1 | grep -q 192.168.1.1", timeout=120)
ct.succeed("ping -c 1 -W 5 vm")
vm.succeed("ping -c 1 -W 5 ct")
# a TCP connection across, both ways
# -k: the port probe of wait_for_open_port is a connection too
ct.succeed("(nc -lk -p 4321 > /tmp/got) >/dev/null 2>&1 &")
ct.wait_for_open_port(4321)
vm.succeed("echo over-the-vlan | nc -N -w 5 ct 4321")
ct.wait_until_succeeds("grep -q over-the-vlan /tmp/got", timeout=30)
# separate VLANs, and no way out
ct2.fail("ping -c 1 -W 1 192.168.1.2")
ct.fail("ping -c 1 -W 1 192.168.2.3")
assert sorted(ct.succeed("ip -o link | cut -d: -f2").split()) == ["eth1", "lo"]
assert ct.succeed("ip route").strip() == "192.168.1.0/24 dev eth1 proto kernel scope link src 192.168.1.2"
ct.fail("ping -c 1 -W 1 10.0.2.2")
assert machines_nspawn == [ct, ct2] and machines_qemu == [vm]
""",
        args=["--vlans", "1", "2", "--start-scripts", vm, ct, ct2, "--"], timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]


def test_the_containers_key_of_the_config_file(bed, host_state):
    script = bed.script("container", "c1")
    config = bed.root / "config.json"
    config.write_text(json.dumps({"vms": {}, "containers": {"c1": {"name": "c1", "start_script": script}},
                                  "vlans": [], "test_script": str(bed.root / "test.py")}))
    (bed.root / "test.py").write_text('assert c1.succeed("hostname").strip() == "c1"\nassert machines_nspawn == [c1]\n')
    r = subprocess.run([os.environ["TD_DRIVER_EXE"], "-c", str(config)], env=bed.env(), cwd=bed.root,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    bad = bed.root / "bad.json"
    bad.write_text(json.dumps({"containers": {"c1": {"start_script": str(bed.root / "run-c1-vm")}}}))
    r = subprocess.run([os.environ["TD_DRIVER_EXE"], "-c", str(bad)], env=bed.env(), cwd=bed.root,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode != 0 and "must be named run-<name>-nspawn" in r.stderr, r.stderr


def test_no_systemd_nspawn_is_a_clear_error_at_start(bed, host_state):
    script = bed.script("container", "c1")
    empty = bed.root / "empty-path"
    empty.mkdir()
    r = bed.run_driver("c1.start()\n", args=["--start-scripts", script, "--"], env=bed.env(PATH=str(empty)),
                       timeout=60)
    assert r.returncode != 0
    assert "machine 'c1': systemd-nspawn is not installed (Debian package systemd-container)" in r.stderr, r.stderr


def test_not_root_is_a_clear_error_at_start(host_state):
    import tempfile
    # pytest's tmp_path is root's alone (mode 0700): a world-writable place of our own.
    with tempfile.TemporaryDirectory(prefix="td-nspawn-nobody-") as top:
        os.chmod(top, 0o777)
        scripts = Path(top)
        from conftest import start_script
        script = start_script("container", "c1", scripts)
        (scripts / "t.py").write_text("c1.start()\n")
        # The build tree may be where uid 65534 cannot go (a clone under /root):
        # the driver and its package, copied where it can.
        import shutil
        import test_driver
        exe = scripts / "nixos-test-driver"
        shutil.copy2(os.environ["TD_DRIVER_EXE"], exe)
        shutil.copytree(Path(test_driver.__file__).parent, scripts / "py" / "test_driver")
        for path in [scripts / "py", *(scripts / "py").rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        env = dict(os.environ, TMPDIR=top, PYTHONPATH=str(scripts / "py"))
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(exe),
                            "-o", top, "--start-scripts", script, "--", str(scripts / "t.py")],
                           env=env, cwd=top, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode != 0
    assert "machine 'c1': systemd-nspawn containers need root, and the driver runs as uid 65534" in r.stderr, r.stderr


def test_release_at_the_end_leaves_nothing_behind(bed, host_state):
    # The script ends with the container running: cleanup kills it.
    script = bed.script("container", "c1", vlans=[1])
    r = bed.run_driver(
        """
c1.succeed("true")
print("PIDS", c1.pid, c1.init_pid)
""",
        args=["--vlans", "1", "--start-scripts", script, "--"], timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    pids = [int(p) for p in [l for l in r.stdout.splitlines() if l.startswith("PIDS")][0].split()[1:]]
    for pid in pids:
        assert gone(pid, wait=5), f"process {pid} outlived the driver"
    root = bed.tmp / "nspawn-state-c1" / "root" / "merged"
    assert mounts_under(root) == []
    assert "kill container c1" in r.stderr
