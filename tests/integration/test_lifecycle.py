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
    # QEMU is killed while the command runs in the guest, not before.
    killer = threading.Timer(1.0, os.kill, (pid, signal.SIGKILL))
    start = time.monotonic()
    killer.start()
    try:
        with pytest.raises(errors.MachineError, match=r"machine 'dies': .*QEMU exited \(signal 9 \(SIGKILL\)\)"):
            m.execute("sleep 20")
    finally:
        killer.cancel()
    took = time.monotonic() - start
    assert 1.0 <= took < 6
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
