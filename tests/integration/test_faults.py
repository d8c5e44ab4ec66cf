"""Issue 6, "never hang, never leak, never lose the log": faults injected
with a fake QEMU (tests/fault/fake-qemu) and the real `mini` guest killed at
each phase, signals sent to nixos-test-driver at each phase, and the global
timeout. Every case checks the error text, how fast it fails, that no
process the driver started is left, and that the XML log parses.

Set TD_FAULT_REPORT=FILE to get one line per case (case | error | time | leftovers)."""
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fault"))
from faultlib import (CATCH, Live, fake_env, fake_script, failed_at, fault_time, leftovers,  # noqa: E402
                      no_inner_traceback, parse_log, pid_wrapper)
from conftest import SLOWDOWN, driver_exe  # noqa: E402


# Bounds for a loaded 2-core machine (other builds and guests running): far
# above what it takes (measured with TD_FAULT_REPORT at load 9: a fault
# noticed in 0.01-0.51 s, a signal ends the run in 0.02 s, 4.7 s with the
# cleanup grace, a 2 s global timeout in 2.1 s), still far below a hang (the
# commands here sleep 60 s; the host bounds are 60 s and more).
# Times SLOWDOWN for the sanitizers' build.
FAULT_NOTICED_WITHIN = 5 * SLOWDOWN
SIGNAL_ENDS_RUN_WITHIN = 10 * SLOWDOWN
CLEANUP_GRACE = 5  # the driver's SIGTERM-to-SIGKILL grace for a QEMU that ignores SIGTERM
GLOBAL_TIMEOUT_SLACK = 15 * SLOWDOWN


def report(case, error, took, left):
    path = os.environ.get("TD_FAULT_REPORT")
    if path:
        with open(path, "a") as f:
            first = next((l for l in error.splitlines() if "machine '" in l or "timeout" in l or "rror" in l), error)
            f.write(f"{case} | {first.strip()[:160]} | {took} | {left}\n")


def run_fake(bed, mode, script_text, timeout=60, args=(), **env):
    script = fake_script(bed)
    t0 = time.monotonic()
    r = bed.run_driver(CATCH + script_text, args=["--start-scripts", script, *args, "--"],
                       env=fake_env(bed, mode, **env), timeout=timeout)
    r.wall = time.monotonic() - t0
    return r


def check_common(bed, case, r, status=1, max_fail_delay=None, error_parts=()):
    """Exit status, error text, time from the fault to the error, no leftovers, a parseable log."""
    assert r.returncode == status, r.stderr
    for part in error_parts:
        assert part in r.stderr, f"{part!r} not in:\n{r.stderr}"
    no_inner_traceback(r.stderr)
    took = None
    if max_fail_delay is not None:
        t_fault, t_error = fault_time(bed), failed_at(r.stdout)
        assert t_fault and t_error, (r.stdout, r.stderr)
        took = t_error - t_fault
        assert 0 <= took < max_fail_delay, f"failed {took:.2f} s after the fault"
    left = leftovers(bed)
    assert not left, f"left behind: {left}"
    parse_log(bed)
    report(case, r.stderr if status else "(none: the run passes)", f"{took:.2f} s after fault" if took is not None else f"{r.wall:.1f} s run", left or "none")


# --- the fake QEMU ------------------------------------------------------------

def test_baseline_fake_qemu_behaves(bed):
    r = run_fake(bed, "ok", "assert machine.succeed('echo hi') == 'hi\\n'\n"
                             "assert 'fake reply' in machine.send_monitor_command('info status')\n"
                             "machine.shutdown()\n")
    check_common(bed, "fake ok (baseline)", r, status=0)


def test_exits_at_once_with_status_3(bed):
    r = run_fake(bed, "exit3", "_guard(lambda: machine.start())\n")
    check_common(bed, "QEMU exits 3 at once", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "QEMU exited (exit code 3)", "could not open disk image"])


def test_never_connects(bed):
    r = run_fake(bed, "never-connect", "machine.start()\n", TEST_DRIVER_CONNECT_TIMEOUT=2)
    check_common(bed, "never connects (connect timeout 2 s)", r,
                 error_parts=["machine 'machine'", "waiting for QEMU to connect to the monitor socket",
                              "no connection within 2 seconds", "fake-qemu: starting"])
    assert r.wall < 10 * SLOWDOWN


def test_monitor_but_never_shell(bed):
    r = run_fake(bed, "monitor-only", "machine.start()\n", TEST_DRIVER_CONNECT_TIMEOUT=2)
    check_common(bed, "monitor connects, shell never", r,
                 error_parts=["waiting for QEMU to connect to the shell socket", "no connection within 2 seconds"])
    assert r.wall < 10 * SLOWDOWN


def test_banner_but_no_prompt_hits_global_timeout(bed):
    r = run_fake(bed, "banner-no-prompt", "machine.start()\n", args=["--global-timeout", "3"])
    check_common(bed, "monitor banner, no prompt (global timeout 3 s)", r,
                 error_parts=["global timeout of 3 seconds reached"])
    assert r.wall < 10 * SLOWDOWN


def test_no_backdoor_line(bed):
    r = run_fake(bed, "no-backdoor", "machine.succeed('true')\n", TEST_DRIVER_CONNECT_TIMEOUT=2)
    check_common(bed, "shell connects, no backdoor line", r,
                 error_parts=["waiting for the guest's backdoor shell", 'no "Spawning backdoor root shell..." line '
                              "within 2 seconds"])


def test_exits_mid_command(bed):
    r = run_fake(bed, "exit-mid-command", "_guard(lambda: machine.succeed('sleep 1'))\n")
    check_common(bed, "QEMU exits mid-command", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "running `sleep 1`", "QEMU exited (exit code 5)",
                              "dying in the middle of a command"])


def test_partial_frame_then_exit(bed):
    r = run_fake(bed, "partial-frame", "_guard(lambda: machine.succeed('echo hello world'))\n")
    check_common(bed, "half an output frame, then exit", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "QEMU exited (exit code 6)", "dying after half a frame"])


def test_garbage_frame(bed):
    r = run_fake(bed, "garbage-frame", "_guard(lambda: machine.succeed('echo hello'))\n")
    check_common(bed, "garbage instead of the frame", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "not the driver's output frame"])


def test_garbage_status(bed):
    r = run_fake(bed, "garbage-status", "_guard(lambda: machine.succeed('echo hello'))\n")
    check_common(bed, "garbage instead of the exit status", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "expected an exit status"])


def test_monitor_command_then_exit(bed):
    r = run_fake(bed, "monitor-hang", "machine.succeed('true')\n_guard(lambda: machine.send_monitor_command('info status'))\n")
    check_common(bed, "QEMU exits during a monitor command", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "QEMU exited (exit code 7)", "monitor hung"])


def test_serial_garbage_is_logged_and_harmless(bed):
    r = run_fake(bed, "serial-garbage", "assert machine.succeed('echo ok') == 'ok\\n'\n")
    check_common(bed, "serial garbage (bad UTF-8, NUL, ESC, 4 MiB line)", r, status=0)
    serial = [l.text or "" for l in parse_log(bed).iter("line") if l.get("type") == "serial"]
    assert any("bad utf-8 \ufffd" in l for l in serial)
    assert any(len(l) == 4 << 20 for l in serial)


def test_shell_garbage_before_backdoor(bed):
    r = run_fake(bed, "shell-garbage", "assert machine.succeed('echo ok') == 'ok\\n'\n")
    check_common(bed, "shell garbage before the backdoor line", r, status=0)


@pytest.mark.parametrize("mode", ["serial-flood", "shell-flood"])
def test_floods(bed, mode):
    # 200 MiB: serial ~4.4 s, RSS ~340 MB at 300 MiB since the console is
    # kept for console_log(); shell ~1.7 s, RSS ~15 MB. The sanitizers' build
    # reads the serial flood ~3x slower: 50 MiB there (3.4 s) covers the same code.
    mib = 200 if SLOWDOWN == 1 else 50
    r = run_fake(bed, mode, "assert machine.succeed('echo ok') == 'ok\\n'\n", timeout=120, FAKE_QEMU_FLOOD_MB=mib)
    check_common(bed, f"{mode} {mib} MiB", r, status=0)
    assert r.wall < 60


# --- the real guest killed with SIGKILL at each phase -----------------------------

KILLER = """
import os, signal, threading, time
def _kill_when(path_ready, delay):
    def run():
        while not path_ready():
            time.sleep(0.01)
        time.sleep(delay)
        pid = int(open(%(pidfile)r).read())
        open(%(faultfile)r, "w").write(repr(time.time()))
        os.kill(pid, signal.SIGKILL)
    threading.Thread(target=run, daemon=True).start()
"""


def run_real(bed, script_text):
    script = pid_wrapper(bed, bed.script("mini", "machine"))
    text = CATCH + KILLER % {"pidfile": str(bed.root / "qemu.pid"), "faultfile": str(bed.root / "fault.time")}
    t0 = time.monotonic()
    r = bed.run_driver(text + script_text, args=["--start-scripts", script, "--"],
                       env=bed.env(LOGFILE=str(bed.root / "log.xml")), timeout=300)
    r.wall = time.monotonic() - t0
    return r


def test_real_qemu_killed_before_the_shell_connects(bed):
    r = run_real(bed, "_kill_when(lambda: os.path.exists(%r), 0)\n_guard(lambda: machine.start())\n"
                 % str(bed.root / "qemu.pid"))
    check_common(bed, "real QEMU SIGKILLed before the shell connects", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "QEMU exited (signal 9 (SIGKILL))"])


def test_real_qemu_killed_during_boot(bed):
    r = run_real(bed, "machine.start()\n_kill_when(lambda: True, 1)\n_guard(lambda: machine.succeed('true'))\n")
    check_common(bed, "real QEMU SIGKILLed during boot", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "waiting for the guest's backdoor shell",
                              "QEMU exited (signal 9 (SIGKILL))", "last lines of QEMU's output"])


def test_real_qemu_killed_mid_execute(bed):
    r = run_real(bed, "machine.succeed('true')\n_kill_when(lambda: True, 1)\n"
                      "_guard(lambda: machine.succeed('sleep 60'))\n")
    check_common(bed, "real QEMU SIGKILLed mid-execute", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "running `sleep 60`", "QEMU exited (signal 9 (SIGKILL))"])


def test_real_qemu_killed_during_monitor_command(bed):
    # QEMU is stopped (SIGSTOP) so the monitor command is surely pending when
    # the SIGKILL comes.
    r = run_real(bed, "machine.succeed('true')\nos.kill(int(open(%r).read()), signal.SIGSTOP)\n"
                      "_kill_when(lambda: True, 1)\n_guard(lambda: machine.send_monitor_command('info status'))\n"
                 % str(bed.root / "qemu.pid"))
    check_common(bed, "real QEMU SIGKILLed during a monitor command", r, max_fail_delay=FAULT_NOTICED_WITHIN,
                 error_parts=["machine 'machine'", "QEMU exited (signal 9 (SIGKILL))"])


# --- signals to nixos-test-driver at each phase --------------------------------------

PHASES = {
    # phase: (fake mode, extra env, script, is the phase reached?)
    "before-boot": ("ok", {}, "open('phase', 'w').close()\ntime.sleep(60)\n", lambda b: (b.root / "phase").exists()),
    "during-boot": ("no-backdoor", {}, "machine.succeed('true')\n",
                    lambda b: (b.root / "fake-qemu.pid").exists()),
    "mid-command": ("ok", {}, "machine.succeed('touch %(root)s/phase; sleep 60')\n",
                    lambda b: (b.root / "phase").exists()),
    # The fake ignores SIGTERM, so cleanup waits its 5 s grace before SIGKILL.
    "during-cleanup": ("ok", {"FAKE_QEMU_IGNORE_TERM": "1"},
                       "machine.start()\nopen('phase', 'w').close()\nraise SystemExit(0)\n",
                       lambda b: (b.root / "phase").exists() and "kill machine" in (b.root / "stderr.txt").read_text()),
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_signal_at_each_phase(bed, phase, sig):
    mode, extra, text, reached = PHASES[phase]
    script = fake_script(bed)
    live = Live(bed, "import time\n" + text % {"root": bed.root},
                args=["--start-scripts", script, "--vlans", "1", "--"], env=fake_env(bed, mode, **extra))
    live.wait_for(lambda: reached(bed), what=phase)
    time.sleep(0.3)
    vde = [int(p) for p in os.popen("pgrep -x vde_switch -P %d" % live.proc.pid).read().split()]
    assert vde, "vde_switch not found"
    for p in vde:
        (bed.root / f"vde-{p}.pid").write_text(str(p))
    live.signal(sig)
    status = live.finish(timeout=30)
    err = live.stderr()
    assert status == 130, err
    assert "interrupted" in err
    no_inner_traceback(err)
    # Cleanup ran and nothing is left, not even a zombie of the driver.
    left = leftovers(bed)
    assert not left, f"left behind: {left}"
    parse_log(bed)
    limit = SIGNAL_ENDS_RUN_WITHIN + (CLEANUP_GRACE if phase == "during-cleanup" else 0)
    assert live.took < limit, f"took {live.took:.1f} s to end"
    report(f"{sig.name} {phase}", "exit 130; interrupted", f"{live.took:.2f} s to exit", left or "none")


def test_global_timeout_ends_a_hung_script(bed):
    script = fake_script(bed)
    t0 = time.monotonic()
    r = bed.run_driver("machine.succeed('true')\ntry:\n    machine.succeed('sleep 60')\nexcept Exception:\n    pass\n",
                       args=["--start-scripts", script, "--vlans", "1", "--"],
                       env=fake_env(bed, "ok", globalTimeout="2"), timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert "global timeout of 2 seconds reached" in r.stderr
    assert took < 2 + GLOBAL_TIMEOUT_SLACK, f"the 2 s global timeout ended the run after {took:.1f} s"
    assert not leftovers(bed)
    parse_log(bed)
    report("global timeout 2 s (script catches Exception)", "global timeout of 2 seconds reached", f"{took:.1f} s run",
           "none")


def test_global_timeout_flag_is_validated(bed):
    for bad in ["0", "-5", "soon"]:
        r = bed.run_driver("pass\n", args=["--global-timeout", bad], timeout=30)
        assert r.returncode != 0 and (r.returncode == 2 or bad == "soon"), (bad, r.stderr)
        assert "--global-timeout" in r.stderr
    r = bed.run_driver("pass\n", env=bed.env(globalTimeout="nope"), timeout=30)
    assert r.returncode == 2 and "globalTimeout" in r.stderr


# --- the driver itself dies (issue 16) ------------------------------------------

# Records the driver's children (QEMU's start script, vde_switch) in
# <pid>.pid files, then signals the phase.
RECORD_CHILDREN = """
import os, time
def _record_children():
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        try:
            stat = open("/proc/%s/stat" % entry).read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:].split()[1] == me:
            open("child-%s.pid" % entry, "w").write(entry)
"""


@pytest.mark.parametrize("how", ["SIGKILL", "SIGQUIT", "os._exit"])
def test_qemu_and_vde_switch_die_with_the_driver(bed, how):
    script = pid_wrapper(bed, bed.script("mini", "machine", vlans=[1]))
    end = "os._exit(3)\n" if how == "os._exit" else "time.sleep(120)\n"
    live = Live(bed, RECORD_CHILDREN + "machine.start()\n_record_children()\nopen('phase', 'w').close()\n" + end,
                args=["--start-scripts", script, "--vlans", "1", "--"], env=bed.env(LOGFILE=str(bed.root / "log.xml")))
    try:
        if how != "os._exit":
            live.wait_for(lambda: (bed.root / "phase").exists(), timeout=120, what="the machine's start")
        else:
            live.proc.wait(120)
        pids = [int(p.read_text()) for p in bed.root.glob("*.pid")]
        qemu = int((bed.root / "qemu.pid").read_text())
        assert len(pids) >= 3, pids  # QEMU (recorded twice: wrapper and child), vde_switch
        t0 = time.monotonic()
        if how != "os._exit":
            live.signal(getattr(signal, how))
            status = live.finish(timeout=30)
            assert status == -getattr(signal, how), live.stderr()
        else:
            assert live.proc.returncode == 3, live.stderr()
        left = leftovers(bed, grace=5)
        took = time.monotonic() - t0
    finally:
        if live.proc.poll() is None:
            live.proc.kill()
            live.proc.wait()
    assert not left, f"left behind: {left}"
    assert took < SIGNAL_ENDS_RUN_WITHIN, f"QEMU and vde_switch took {took:.2f} s to die"
    assert qemu in pids
    report(f"driver ends by {how}", "(no cleanup runs)", f"{took:.2f} s until QEMU and vde_switch are gone", "none")


def test_second_driver_on_the_same_state_directory_fails_at_once(bed):
    # Two runs, one TMPDIR, one machine name: the second must neither delete
    # the first's sockets nor reach its QEMU.
    script = pid_wrapper(bed, bed.script("mini", "machine"))
    first = Live(bed, "import os, time\nmachine.succeed('true')\nopen('phase', 'w').close()\n"
                      "while not os.path.exists('go-on'):\n    time.sleep(0.05)\n"
                      "assert machine.succeed('echo still mine') == 'still mine\\n'\n",
                 args=["--start-scripts", script, "--"], env=bed.env(LOGFILE=str(bed.root / "log.xml")))
    try:
        first.wait_for(lambda: (bed.root / "phase").exists(), timeout=120, what="the first run's boot")
        second_dir = bed.root / "second"
        second_dir.mkdir()
        marker = second_dir / "started"
        other = second_dir / "run-machine-vm"
        other.write_text(f"#!/bin/sh\ntouch {marker}\nexec {script} \"$@\"\n")
        other.chmod(0o755)
        t0 = time.monotonic()
        r = bed.run_driver("machine.succeed('true')\n", args=["--start-scripts", str(other), "--"],
                           env=bed.env(LOGFILE=str(second_dir / "log.xml")), timeout=60)
        took = time.monotonic() - t0
        state = bed.tmp / "vm-state-machine"
        assert r.returncode == 2, r.stderr
        assert f"the VM state directory {state} is in use by another test driver (pid {first.proc.pid})" in r.stderr
        assert took < 5 * SLOWDOWN, f"the second driver took {took:.1f} s to fail"
        assert not marker.exists(), "the second driver ran its start script"
        for socket in ("monitor", "shell", "qmp"):
            assert (state / socket).exists(), f"the second driver deleted {socket}"
        (bed.root / "go-on").touch()
        assert first.finish(timeout=60) == 0, first.stderr()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait()
    assert not leftovers(bed)
    parse_log(bed)
    import xml.etree.ElementTree as ET
    ET.parse(second_dir / "log.xml")
    report("second driver, same TMPDIR and machine name", r.stderr.strip().splitlines()[-1][:160],
           f"{took:.2f} s to fail", "none")


def test_second_driver_on_the_same_vlan_fails_at_once(bed):
    # Two runs, one TMPDIR, one VLAN number: the second must not take the
    # first's vde_switch (its own switch cannot bind the socket, and its
    # guests would be plugged into the first run's LAN).
    first = Live(bed, "import os, time\nopen('phase', 'w').close()\n"
                      "while not os.path.exists('go-on'):\n    time.sleep(0.05)\n",
                 args=["--vlans", "1", "--"], env=bed.env(LOGFILE=str(bed.root / "log.xml")))
    try:
        first.wait_for(lambda: (bed.root / "phase").exists(), timeout=30, what="the first run's start")
        ctl = bed.tmp / "vde1.ctl"
        switch = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p)[:1] == ["vde_switch"]
                  and str(ctl) in _cmdline(p)]
        assert len(switch) == 1, switch
        second = bed.root / "second"
        second.mkdir()
        t0 = time.monotonic()
        (second / "test.py").write_text("open('script-ran', 'w').close()\n")
        r = subprocess.run([driver_exe(), "--vlans", "1", "--", str(second / "test.py")], cwd=second,
                           env=bed.env(LOGFILE=str(second / "log.xml")), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 2, r.stderr
        assert (f"cannot set up the test: the VLAN directory {ctl} is in use by another test driver "
                f"(pid {first.proc.pid})") in r.stderr
        assert took < 10 * SLOWDOWN, f"the second driver took {took:.1f} s to fail"
        assert not (second / "script-ran").exists()
        assert (ctl / "ctl").exists(), "the second driver removed the first's control socket"
        assert os.path.exists(f"/proc/{switch[0]}"), "the first run's vde_switch died"
        ET.parse(second / "log.xml")
        (bed.root / "go-on").touch()
        assert first.finish(timeout=30) == 0, first.stderr()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait()
    assert not ctl.exists(), "the VLAN directory was left behind"
    parse_log(bed)


def _cmdline(pid: str) -> list[str]:
    try:
        return [a.decode() for a in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0") if a]
    except OSError:
        return []


@pytest.mark.parametrize("how", ["falls off the end", "sys.exit", "raises"])
def test_a_forked_script_leaves_cleanup_to_the_driver(bed, how):
    # Issue 16: the child's exit ran the full cleanup, killed the parent's
    # QEMU and appended a second </logfile>.
    script = pid_wrapper(bed, bed.script("mini", "machine", vlans=[1]))
    child_end = {"falls off the end": "pass", "sys.exit": "raise SystemExit(0)", "raises": "raise RuntimeError('child')"}
    text = f"""
import os, time
machine.succeed('true')
pid = os.fork()
if pid == 0:
    {child_end[how]}
else:
    _, status = os.waitpid(pid, 0)
    print("CHILD STATUS", status, flush=True)
    time.sleep(0.5)
    assert machine.succeed('echo alive') == 'alive\\n'
    print("PARENT OK", flush=True)
"""
    r = bed.run_driver(text, args=["--start-scripts", script, "--vlans", "1", "--"],
                       env=bed.env(LOGFILE=str(bed.root / "log.xml")), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "PARENT OK" in r.stdout, r.stdout + r.stderr
    assert r.stderr.count("kill machine") == 1, r.stderr
    assert r.stderr.count("kill vlan") == 1, r.stderr
    text = (bed.root / "log.xml").read_text()
    assert text.count("</logfile>") == 1, text[-300:]
    parse_log(bed)
    assert not leftovers(bed)


THREAD = ("import threading, time\nmachine.succeed('true')\n"
          "threading.Thread(target=lambda: time.sleep(1000), name='stuck-worker').start()\n"
          "open('phase', 'w').close()\n")


def test_a_thread_that_never_ends_gets_the_rest_of_the_global_timeout(bed):
    # Issue 16: Python waited for it for ever at exit.
    t0 = time.monotonic()
    r = run_fake(bed, "ok", THREAD, args=["--global-timeout", "4"])
    took = time.monotonic() - t0
    check_common(bed, "a non-daemon thread never ends (global timeout 4 s)", r,
                 error_parts=["kill machine", "waiting for the test script's threads: stuck-worker",
                              "global timeout of 4 seconds reached with threads of the test script still running: "
                              "stuck-worker"])
    assert r.stderr.index("kill machine") < r.stderr.index("waiting for the test script's threads")
    assert 4 <= took < 4 + GLOBAL_TIMEOUT_SLACK, f"took {took:.1f} s"


def test_sigterm_while_waiting_for_a_thread_exits_130(bed):
    live = Live(bed, THREAD, args=["--start-scripts", fake_script(bed), "--"], env=fake_env(bed))
    live.wait_for(lambda: "waiting for the test script's threads" in live.stderr(), what="the wait for the thread")
    live.signal(signal.SIGTERM)
    assert live.finish(timeout=10) == 130, live.stderr()
    assert "interrupted while waiting for the test script's threads: stuck-worker" in live.stderr()
    assert live.took < SIGNAL_ENDS_RUN_WITHIN
    assert not leftovers(bed)
    parse_log(bed)
