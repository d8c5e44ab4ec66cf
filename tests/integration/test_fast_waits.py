"""The waits that poll inside the guest (wait_for_file, the port waits, the
Unix socket wait): one command that loops in the guest's bash, so a try
starts no process; they see a condition that turns true while they wait,
time out with the reference's message, and Ctrl-C frees the shell at once.
One `mini` guest for the module."""
import os
import signal
import threading
import time

import pytest

from conftest import Bed
from test_driver import errors


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    m = Bed(tmp_path_factory.mktemp("waits")).machine("mini")
    m.connect()
    yield m
    m.release()


def last_pid(machine) -> int:
    """The guest's most recently started process (the fifth field of
    /proc/loadavg), read with bash builtins so that it starts none."""
    return int(machine.succeed("read -r _ _ _ _ p </proc/loadavg; echo $p").strip())


def assert_few_processes(machine, before: int, started_by_test: int):
    # A wait of ~2 s that probed once per try would start a few processes
    # per try (the command's pipeline: ~40 here); the guest's loop starts
    # them once, and last_pid's own command a few more. The kernel's own
    # threads (kworkers) take PIDs too, and a loaded host makes more of them
    # (9 seen where 8 was the bound): 16 still tells 40 from a few.
    after = last_pid(machine)
    assert after - before <= started_by_test + 16, f"{after - before} processes started during the wait"


def test_wait_for_file_sees_a_file_made_while_it_waits(machine):
    machine.succeed("rm -f /tmp/late; (sleep 2; : >/tmp/late) >/dev/null 2>&1 &")
    assert machine.execute("test -e /tmp/late")[0] == 1
    before = last_pid(machine)
    machine.wait_for_file("/tmp/late", timeout=60)
    assert_few_processes(machine, before, started_by_test=0)
    assert machine.execute("test -e /tmp/late")[0] == 0


def test_wait_for_file_times_out_with_the_reference_message(machine):
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after 2\.\d\d seconds \(timeout=2\)"):
        machine.wait_for_file("/tmp/never-made", timeout=2)
    assert machine.succeed("echo in-step") == "in-step\n"


def test_port_waits_see_a_listener_come_and_go(machine):
    machine.succeed("(sleep 2; exec busybox nc -l -p 4400 >/dev/null 2>&1) >/dev/null 2>&1 &")
    before = last_pid(machine)
    machine.wait_for_open_port(4400, timeout=60)
    assert_few_processes(machine, before, started_by_test=0)
    # busybox nc exits after its one connection: the wait's own probe, or this one.
    machine.succeed("(echo bye | nc -N localhost 4400) >/dev/null 2>&1 || true")
    machine.wait_for_closed_port(4400, timeout=60)
    assert machine.execute(": </dev/tcp/127.0.0.1/4400")[0] != 0


def test_port_waits_time_out_with_the_reference_message(machine):
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after 2\.\d\d seconds \(timeout=2\)"):
        machine.wait_for_open_port(4401, timeout=2)
    # A listener that stays (-k) keeps the port open past the timeout.
    machine.succeed("(exec nc -lk 4402 >/dev/null 2>&1) >/dev/null 2>&1 &")
    try:
        machine.wait_for_open_port(4402, timeout=60)
        with pytest.raises(errors.RequestedAssertionFailed, match=r"timed out after 2\.\d\d seconds \(timeout=2\)"):
            machine.wait_for_closed_port(4402, timeout=2)
    finally:
        machine.execute("pkill -f 'nc -lk 4402'")


def test_unix_socket_wait_sees_a_socket_made_while_it_waits(machine):
    machine.succeed("rm -f /tmp/late.sock; (sleep 2; exec nc -lU /tmp/late.sock >/dev/null 2>&1) >/dev/null 2>&1 &")
    machine.wait_for_open_unix_socket("/tmp/late.sock", timeout=60)
    assert machine.execute("test -S /tmp/late.sock")[0] == 0
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after 2\.\d\d seconds \(timeout=2\)"):
        machine.wait_for_open_unix_socket("/tmp/no-such.sock", timeout=2)


def test_ctrl_c_ends_the_guests_loop_and_the_shell_answers_at_once(machine):
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        machine.wait_for_file("/tmp/never-made", timeout=900)
    assert time.monotonic() - start < 30  # the driver's wait ended on the interrupt
    # The guest's loop would run for 900 s; the driver tells it to stop, so
    # the next command answers well within this bound.
    answer = {}
    worker = threading.Thread(target=lambda: answer.update(out=machine.succeed("echo next")))
    worker.start()
    worker.join(timeout=120)
    assert answer.get("out") == "next\n"
    assert machine.execute("echo again") == (0, "again\n")


def test_a_bash_without_dev_tcp_falls_back_to_nc(tmp_path, monkeypatch):
    # Debian's bash always has network redirections (even a real
    # /dev/tcp/127.0.0.1 directory does not hide them), so the driver is told
    # to take the guest's bash for one without. The port waits must then poll
    # with the real `nc -z` (wrapped to count its runs), as the reference does.
    monkeypatch.setenv("TEST_DRIVER_GUEST_NO_DEV_TCP", "1")
    m = Bed(tmp_path).machine("mini")
    m.connect()
    try:
        m.succeed("rm /usr/bin/nc && printf '#!/bin/sh\\necho \"$*\" >>/tmp/nc-runs\\nexec nc.openbsd \"$@\"\\n' "
                  ">/usr/bin/nc && chmod +x /usr/bin/nc")
        m.succeed("(sleep 2; exec busybox nc -l -p 4401 >/dev/null 2>&1) >/dev/null 2>&1 &")
        m.wait_for_open_port(4401, timeout=60)
        runs = m.succeed("cat /tmp/nc-runs").splitlines()
        assert len(runs) >= 2 and all(r == "-z localhost 4401" for r in runs), runs  # closed, then open
        with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after"):
            m.wait_for_open_port(4402, timeout=2)
        assert "-z localhost 4402" in m.succeed("cat /tmp/nc-runs")
    finally:
        m.release()
