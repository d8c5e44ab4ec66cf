"""The host-side hang bounds (include/test_driver/hang_bounds.h) against a
real `mini` guest that goes quiet: stopped through QMP (`stop`: QEMU runs,
the guest's CPU and clock do not, so the backdoor shell says nothing), or
QEMU itself stopped with SIGSTOP (so neither monitor answers). Each bound is
shortened through its environment variable; the test checks that the wait
ends at the bound, not before and not at the default, with the error naming
the step. Also: machine.sleep() sleeps in guest time, and what happens to a
command the driver stopped waiting for."""
import contextlib
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import Bed
from test_driver import errors
from test_driver.machine import Machine, NixStartScript

# A loaded 2-core machine may be slow to notice a deadline, never by the
# minutes the defaults (60 s, 300 s) would take.
SLACK = 20
# A bound may end a hair before the test's clock says it should (measured:
# the stale grace of 3 s after 2.9992 s): 0.1 s below a bound still shows
# that the bound, not an early failure, ended the wait.
EARLY = 0.1


def wrapped_machine(bed, name, *extra_qemu_args, **kw):
    """A Machine on the mini guest whose start script gets extra QEMU arguments."""
    real = bed.script("mini", name)
    wrapper = bed.scripts / "wrap" / f"run-{name}-vm"
    wrapper.parent.mkdir(exist_ok=True)
    words = " ".join(f"'{a}'" for a in extra_qemu_args)
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@" {words}\n')
    wrapper.chmod(0o755)
    return Machine(out_dir=bed.out, tmp_dir=bed.tmp, start_command=NixStartScript(str(wrapper)), name=name, **kw)


class OwnQmp:
    """The test's own QMP connection to QEMU (a second -qmp socket), usable
    from another thread while the driver waits on the guest."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline, f"no QMP socket at {path}"
                time.sleep(0.1)
        self.file = self.sock.makefile("rwb")
        assert "QMP" in json.loads(self.file.readline())
        self.command("qmp_capabilities")

    def command(self, name):
        self.file.write(json.dumps({"execute": name}).encode() + b"\n")
        self.file.flush()
        while True:
            message = json.loads(self.file.readline())
            if "return" in message or "error" in message:
                assert "return" in message, message
                return message["return"]

    def close(self):
        self.file.close()
        self.sock.close()


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    return Bed(tmp_path_factory.mktemp("hang"))


@pytest.fixture(scope="module")
def machine(bed):
    m = wrapped_machine(bed, "quiet", "-qmp", f"unix:{bed.root}/own-qmp,server=on,wait=off")
    m.connect()
    yield m
    m.release()


@pytest.fixture(scope="module")
def own_qmp(machine, bed):
    q = OwnQmp(bed.root / "own-qmp")
    yield q
    q.close()


def test_sleep_is_guest_time(machine, own_qmp):
    # The guest is stopped for 2 s in the middle of a 2 s machine.sleep():
    # a sleep in guest time lasts both; one on the host would end after 2 s.
    def pause():
        time.sleep(0.5)
        own_qmp.command("stop")
        time.sleep(2)
        own_qmp.command("cont")

    pauser = threading.Thread(target=pause)
    start = time.monotonic()
    pauser.start()
    try:
        machine.sleep(2)
        took = time.monotonic() - start
    finally:
        pauser.join()
    assert took >= 3.8, f"machine.sleep(2) took {took:.2f} s with the guest stopped for 2 s of it"


@contextlib.contextmanager
def guest_stopped(machine):
    """The guest paused through QMP (its backdoor goes quiet), resumed after."""
    machine.qmp_command("stop")
    try:
        yield
    finally:
        machine.qmp_command("cont")


def test_a_command_is_bounded_at_its_timeout_plus_the_margin(machine, monkeypatch):
    monkeypatch.setenv("TEST_DRIVER_COMMAND_MARGIN", "2")
    with guest_stopped(machine):
        start = time.monotonic()
        with pytest.raises(errors.MachineError, match=r"machine 'quiet': running `echo quiet`: no answer from the guest shell in time"):
            machine.execute("echo quiet", timeout=1)
        took = time.monotonic() - start
    assert 3 - EARLY <= took < 3 + SLACK, f"gave up after {took:.2f} s (timeout 1 + margin 2)"
    # The late reply of `echo quiet` is dropped, not taken for the next one's.
    assert machine.succeed("echo back") == "back\n"


def test_the_margin_variable_is_checked(machine, monkeypatch):
    monkeypatch.setenv("TEST_DRIVER_COMMAND_MARGIN", "soon")
    with pytest.raises(errors.Error, match="TEST_DRIVER_COMMAND_MARGIN=soon: expected a number of seconds"):
        machine.execute("true", timeout=5)


def test_an_interrupted_command_is_waited_for_then_named(machine, monkeypatch, capfd):
    # The slow path: the next command waits for the reply of the one Ctrl-C
    # stopped the driver waiting for, and says so.
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        machine.execute("sleep 3; echo late")
    assert machine.succeed("echo next") == "next\n"
    assert "waiting for the earlier command `sleep 3; echo late` (the driver stopped waiting for it)" in capfd.readouterr().err

    # When that reply does not come by the interrupted command's own bound
    # (timeout 3 + margin 1: the guest is stopped), the error names it.
    monkeypatch.setenv("TEST_DRIVER_COMMAND_MARGIN", "1")
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        machine.execute("sleep 600", timeout=3)
    with guest_stopped(machine):
        with pytest.raises(errors.MachineError, match=r"machine 'quiet': waiting for the earlier command `sleep 600` "
                                                      r"\(the driver stopped waiting for it\): it has not finished in "
                                                      r"time; the guest shell is still busy"):
            machine.succeed("echo never")
        took = time.monotonic() - start
    assert 4 - EARLY <= took < 4 + SLACK, f"gave up after {took:.2f} s (timeout 3 + margin 1)"
    # Resumed, the command's watchdog ends the sleep at 3 s; its reply is dropped.
    assert machine.succeed("echo resumed") == "resumed\n"


def test_monitor_and_qmp_replies_are_bounded(bed, monkeypatch):
    monkeypatch.setenv("TEST_DRIVER_REPLY_TIMEOUT", "2")
    m = wrapped_machine(bed, "frozen")
    m.start()
    os.kill(m.pid, signal.SIGSTOP)  # QEMU itself: neither monitor answers
    try:
        start = time.monotonic()
        with pytest.raises(errors.MachineError, match=r"machine 'frozen': waiting for the monitor prompt: no prompt within 2 seconds"):
            m.send_monitor_command("info status")
        took_monitor = time.monotonic() - start
        start = time.monotonic()
        with pytest.raises(errors.MachineError, match=r"machine 'frozen': .*no QMP reply within 2 seconds"):
            m.qmp_command("query-status")
        took_qmp = time.monotonic() - start
    finally:
        os.kill(m.pid, signal.SIGCONT)
        m.release()
    assert 2 - EARLY <= took_monitor < 2 + SLACK and 2 - EARLY <= took_qmp < 2 + SLACK, (took_monitor, took_qmp)


def test_the_connect_wait_says_it_is_still_waiting(bed, monkeypatch, capfd):
    # -S: QEMU starts with the guest stopped, so no backdoor shell ever greets.
    monkeypatch.setenv("TEST_DRIVER_CONNECT_TIMEOUT", "4.5")
    monkeypatch.setenv("TEST_DRIVER_STILL_WAITING_EVERY", "1")
    m = wrapped_machine(bed, "paused", "-S")
    try:
        start = time.monotonic()
        with pytest.raises(errors.MachineError, match=r"machine 'paused': waiting for the guest's backdoor shell: "
                                                      r"no \"Spawning backdoor root shell...\" line within 4.5 seconds"):
            m.connect()
        took = time.monotonic() - start
    finally:
        m.release()
    notes = [line for line in capfd.readouterr().err.splitlines()
             if "still waiting for the guest's backdoor shell" in line]
    assert 3 <= len(notes) <= 5, notes
    assert 4.5 - EARLY <= took < 4.5 + SLACK


def test_a_probe_left_unanswered_gets_the_stale_grace(machine, monkeypatch):
    # A wait's probe (here a port check) that the stopped guest never
    # answers: the wait fails at its host bound, and the next command waits
    # TEST_DRIVER_STALE_GRACE for the probe's reply before it names it.
    monkeypatch.setenv("TEST_DRIVER_COMMAND_MARGIN", "1")
    monkeypatch.setenv("TEST_DRIVER_STALE_GRACE", "3")
    with guest_stopped(machine):
        with pytest.raises(errors.MachineError, match=r"machine 'quiet': running `.*`: no answer from the guest shell in time"):
            machine.wait_for_open_port(1, timeout=1)
        start = time.monotonic()
        with pytest.raises(errors.MachineError, match=r"machine 'quiet': waiting for the earlier command `.*` \(the driver "
                                                      r"stopped waiting for it\): it has not finished in time"):
            machine.succeed("echo never")
        took = time.monotonic() - start
    assert 3 - EARLY <= took < 3 + SLACK, f"gave up after {took:.2f} s (stale grace 3)"
    assert machine.succeed("echo resumed") == "resumed\n"
