"""Start, crash, restart and shut down one real `mini` guest."""
import os
import signal
import threading
import time

import pytest

from test_driver import errors


def make(bed, name="life", **kw):
    return bed.machine("mini", name, **kw)


def test_crash_restart_shutdown(bed):
    m = make(bed)
    m.start()
    assert m.booted and not m.connected and m.pid > 0
    pid = m.pid
    assert m.succeed("echo one") == "one\n"
    assert m.is_up()
    m.crash()
    assert not m.booted and m.pid is None and not m.is_up()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The same machine boots again.
    assert m.succeed("echo two") == "two\n"
    m.shutdown()
    assert not m.booted and not m.connected
    m.release()


def test_qemu_dying_mid_command_fails_fast(bed):
    m = make(bed, "dies")
    m.connect()
    pid = m.pid
    # QEMU is killed once the command runs in the guest (it says so through
    # the 9p share), not before.
    started = m.shared_dir / "started"

    def kill_when_started():
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_times.append(time.monotonic())
        os.kill(pid, signal.SIGKILL)

    kill_times = []
    killer = threading.Thread(target=kill_when_started)
    killer.start()
    try:
        with pytest.raises(errors.MachineError, match=r"machine 'dies': running `touch /tmp/shared/started; sleep 60`: .*"
                                                      r"QEMU exited \(signal 9 \(SIGKILL\)\)"):
            m.execute("touch /tmp/shared/started; sleep 60")
        failed_at = time.monotonic()
    finally:
        killer.join()
    assert started.exists(), "the command never ran in the guest"
    # The pidfd watch ends the wait at once; 20 s is far below the command's
    # own 60 s and its host bound.
    assert failed_at - kill_times[0] < 20
    m.release()


def test_allow_reboot_reboots_and_the_guest_is_reached_again(bed):
    m = make(bed, "reboots", allow_reboot=True)
    m.connect()
    pid = m.pid
    boot_id = m.succeed("cat /proc/sys/kernel/random/boot_id").strip()
    m.execute("(sleep 0.5; reboot -f) >/dev/null 2>&1 &")
    m.connected = False
    # The next command waits for the new boot's shell, in the same QEMU.
    assert m.succeed("cat /proc/sys/kernel/random/boot_id", timeout=120).strip() != boot_id
    assert m.pid == pid and m.booted and m.connected
    m.release()


def test_without_allow_reboot_a_reboot_ends_qemu(bed):
    m = make(bed, "noreboot")
    m.connect()
    pid = m.pid
    m.execute("(sleep 0.5; reboot -f) >/dev/null 2>&1 &")
    m.wait_for_shutdown(timeout=120)  # -no-reboot: QEMU exits
    assert not m.booted
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    m.release()


def test_release_kills_qemu(bed):
    m = make(bed, "killed")
    m.start()
    pid = m.pid
    m.release()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    m.release()  # idempotent


def test_interrupted_command_keeps_the_shell_in_step(bed):
    m = make(bed, "intr")
    m.connect()
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        m.execute("sleep 4; echo late")
    assert time.monotonic() - start < 3  # the wait ended at once
    # The guest's command still runs; its reply is dropped, not taken for ours.
    assert m.succeed("echo next") == "next\n"
    assert m.execute("echo again") == (0, "again\n")
    m.release()


def test_shell_interact_through_a_pty(bed):
    import select
    import subprocess
    from conftest import driver_exe
    require = __import__("conftest").require_tools
    require("socat")
    script = bed.script("mini", "machine")
    test = bed.root / "interact.py"
    test.write_text("machine.shell_interact()\nprint('after-interact', machine.succeed('echo still-here').strip())\n")
    master, slave = os.openpty()
    proc = subprocess.Popen([driver_exe(), "--start-scripts", script, "--", str(test)], env=bed.env(),
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=bed.root)
    os.close(slave)
    seen = b""

    def read_until(marker, limit=120):
        nonlocal seen
        deadline = time.monotonic() + limit
        while marker not in seen and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return marker in seen

    try:
        # Typed ahead: the terminal keeps the line until socat reads it.
        os.write(master, b"echo interact-$((40+2))\n")
        assert read_until(b"interact-42"), seen
        os.write(master, b"\x04")  # Ctrl-D ends socat; the script goes on
        assert read_until(b"after-interact still-here"), seen
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:  # SIGTERM, so the driver cleans its QEMU up
            proc.terminate()
            proc.wait(timeout=30)
        os.close(master)
