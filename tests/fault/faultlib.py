"""Helpers for the fault-injection and bad-input tests: start scripts that
exec the fake QEMU (tests/fault/fake-qemu) or wrap a real one, running the
driver with a live handle, and the checks every case makes (no process
left behind, a well-formed XML log)."""
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import driver_exe

FAKE_QEMU = Path(__file__).resolve().parent / "fake-qemu"


def fake_script(bed, name="machine") -> str:
    """run-<name>-vm that execs the fake QEMU (it reads FAKE_QEMU_* from the environment)."""
    path = bed.scripts / f"run-{name}-vm"
    path.write_text(f'#!/bin/sh\nexec {FAKE_QEMU} "$@"\n')
    path.chmod(0o755)
    return str(path)


def pid_wrapper(bed, real_script: str, name="machine") -> str:
    """run-<name>-vm that records its pid (QEMU's, after exec) in bed.root/qemu.pid, then execs real_script."""
    path = bed.scripts / "wrap" / f"run-{name}-vm"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'#!/bin/sh\necho $$ > {bed.root}/qemu.pid\nexec {real_script} "$@"\n')
    path.chmod(0o755)
    return str(path)


def fake_env(bed, mode="ok", **extra):
    env = bed.env(LOGFILE=str(bed.root / "log.xml"), FAKE_QEMU_MODE=mode, FAKE_QEMU_PIDDIR=str(bed.root))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def no_inner_traceback(stderr: str):
    """A traceback may show the test script's frames, never the driver's internals."""
    for line in stderr.splitlines():
        if line.strip().startswith("File \""):
            assert "test_driver" not in line and "<frozen" not in line, stderr


def parse_log(bed):
    root = ET.parse(bed.root / "log.xml").getroot()
    assert root.tag == "logfile"
    return root


def read_pid(path: Path):
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _proc_state(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return {"state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2])}


def group_members(pgid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_state(int(entry))
            if st and st["pgrp"] == pgid and st["state"] != "Z":
                out.append(int(entry))
    return out


def alive(pid):
    st = _proc_state(pid)
    return st is not None and st["state"] != "Z"


def leftovers(bed, grace=3.0):
    """Processes the run started that still live: pids recorded in bed.root/*.pid
    and members of their process groups. Waits up to `grace` seconds (SIGKILL
    is asynchronous for processes that are not the driver's children)."""
    pids = [p for p in (read_pid(f) for f in bed.root.glob("*.pid")) if p]
    deadline = time.monotonic() + grace
    while True:
        left = sorted({p for p in pids if alive(p)} | {m for p in pids for m in group_members(p)})
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def fault_time(bed):
    try:
        return float((bed.root / "fault.time").read_text())
    except OSError:
        return None


# A test-script prelude: prints when the first error reaches the script.
CATCH = """
import time as _t
def _guard(f):
    try:
        return f()
    except BaseException:
        print("FAILED-AT", repr(_t.time()), flush=True)
        raise
"""


def failed_at(stdout: str):
    for line in stdout.splitlines():
        if line.startswith("FAILED-AT "):
            return float(line.split()[1])
    return None


class Live:
    """The driver run as a Popen, for signalling it at a chosen phase."""

    def __init__(self, bed, script_text, args=(), env=None):
        test = bed.root / "test.py"
        test.write_text(script_text)
        self.out = open(bed.root / "stdout.txt", "w+")
        self.err = open(bed.root / "stderr.txt", "w+")
        self.proc = subprocess.Popen([driver_exe(), *args, str(test)], env=env or bed.env(), cwd=bed.root,
                                     stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL)
        self.bed = bed

    def wait_for(self, predicate, timeout=60, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise AssertionError(f"driver exited ({self.proc.returncode}) before {what}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.stderr()}")
            time.sleep(0.05)

    def stderr(self):
        self.err.flush()
        return (self.bed.root / "stderr.txt").read_text(errors="replace")

    def stdout(self):
        self.out.flush()
        return (self.bed.root / "stdout.txt").read_text(errors="replace")

    def signal(self, sig):
        self.sent_at = time.monotonic()
        self.proc.send_signal(sig)

    def finish(self, timeout=60):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the driver did not end within {timeout} s:\n{self.stderr()}")
        self.took = time.monotonic() - getattr(self, "sent_at", time.monotonic())
        return self.proc.returncode
