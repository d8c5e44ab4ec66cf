"""machine.switch_root() (upstream's, for guests with testing.initrdBackdoor)
against the mini guest's opt-in initrd stage (start-script --initrd-backdoor):
commands first run in stage 1's backdoor shell, which sees the initrd;
switch_root() moves the guest into its normal root and the driver connects
to the backdoor shell that starts there."""
import pytest

from conftest import Bed
from test_driver import errors
from test_driver.driver import Driver


def test_switch_root_moves_from_the_initrd_shell_to_the_real_roots(tmp_path):
    bed = Bed(tmp_path)
    m = bed.machine("mini", name="staged", script_args=["--initrd-backdoor"])
    try:
        # Stage 1: the initrd's marker, its PID 1 and root file system.
        assert m.succeed("cat /etc/initrd-release") == 'NAME="mini initrd"\n'
        assert m.succeed("cat /proc/1/comm") == "td-initrd\n"
        assert m.succeed("stat -f -c %T /").strip() in ("ramfs", "tmpfs")
        # The real root waits at /sysroot, as in a NixOS initrd.
        m.succeed("test -x /sysroot/bin/td-backdoor", "grep -q ' /sysroot tmpfs ' /proc/mounts")
        m.fail("test -e /sysroot/etc/initrd-release")
        # wait_for_unit answers from the initrd's systemctl, as in a systemd initrd.
        m.wait_for_unit("initrd.target", timeout=30)
        m.succeed("touch /stage1-only")

        m.switch_root()

        assert m.connected
        # Stage 2: busybox init is PID 1 (the same process), the initrd's files are gone.
        assert m.succeed("cat /proc/1/comm") == "init\n"
        assert m.fail("test -e /etc/initrd-release") == ""
        m.fail("test -e /stage1-only", "test -e /sysroot")
        m.fail("command -v systemctl")
        assert m.succeed("stat -f -c %T /") == "tmpfs\n"
        # The normal boot ran: its services, shares and log line.
        m.succeed("grep -q ' /tmp/xchg 9p ' /proc/mounts")
        m.wait_for_console_text("mini guest up")
        assert "td-initrd: switching root" in m.get_console_log()
    finally:
        m.release()


def test_switch_root_reconnect_is_in_the_drivers_log(tmp_path):
    bed = Bed(tmp_path)
    script = bed.script("mini", "machine", extra_args=["--initrd-backdoor"])
    r = bed.run_driver("machine.succeed('test -e /etc/initrd-release')\n"
                       "machine.switch_root()\n"
                       "machine.fail('test -e /etc/initrd-release')\n"
                       "machine.succeed('test -x /bin/td-backdoor')\n",
                       args=["--start-scripts", script, "--"])
    assert r.returncode == 0, r.stdout + r.stderr
    log = r.stdout + r.stderr
    # two connections to a backdoor shell, the second after the unit wait of switch_root
    i = log.index("waiting for unit initrd.target")
    assert log.count("connected to guest root shell") == 2, log
    assert log.index("connected to guest root shell", i) > i
