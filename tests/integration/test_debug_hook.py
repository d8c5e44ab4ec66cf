"""The debug hook (--debug-hook-attach, upstream's test_driver.debug): the real
nixos-test-driver, no machine; the test attaches to the pdb it serves on
127.0.0.1:4444 over TCP, as a user's `nc 127.0.0.1 4444` would."""
import os
import re
import socket
import subprocess
import threading
import time

from conftest import driver_exe, gone

PORT = 4444
ATTACH = "/run/current-system/sw/bin/attach-to-the-sandbox"


class Driver:
    """nixos-test-driver running a script, its stderr read line by line on a thread."""

    def __init__(self, bed, script: str, *args: str):
        (bed.root / "test.py").write_text(script)
        self.proc = subprocess.Popen([driver_exe(), *args, "--", str(bed.root / "test.py")], env=bed.env(),
                                     cwd=bed.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.out = ""
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_err(self):
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def _read_out(self):
        self.out = self.proc.stdout.read()

    def wait_for_line(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, \
                    f"no line matching {pattern!r} on the driver's stderr:\n" + "\n".join(self.lines)
                self._cond.wait(min(left, 0.5))

    def finish(self, timeout: float = 60) -> int:
        """The driver's exit status, once it exits (within `timeout` seconds, else it is killed)."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(10)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


class Pdb:
    """A client of the debugger on 127.0.0.1:PORT."""

    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        self.buffer = b""

    def read_prompt(self) -> str:
        """Everything up to the next "(Pdb) " prompt."""
        while b"(Pdb) " not in self.buffer:
            data = self.sock.recv(4096)
            assert data, f"the debugger closed the connection before its prompt; it sent {self.buffer!r}"
            self.buffer += data
        text, _, self.buffer = self.buffer.partition(b"(Pdb) ")
        return text.decode()

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read_prompt()

    def closed_after(self, line: str) -> bool:
        """Sends `line`; True when the debugger then closes the connection (within 30 s)."""
        self.sock.sendall(line.encode() + b"\r\n")
        while True:
            data = self.sock.recv(4096)
            if not data:
                return True
            self.buffer += data


def port_free() -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", PORT))
            return True
        except OSError:
            return False


def markers(pattern: str) -> list[int]:
    """The pids of the processes `sleep PATTERN` (upstream's marker)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if len(argv) == 2 and os.path.basename(argv[0]) == b"sleep" and argv[1] == pattern.encode():
            found.append(int(pid))
    return found


FAILING = """\
some_variable = 6 * 7
def check(value):
    doubled = value * 2
    assert doubled == 0, f"doubled is {doubled}"
check(some_variable)
print("never here")
"""


def test_a_failing_script_serves_a_debugger_at_its_failing_line(bed):
    assert port_free(), f"127.0.0.1:{PORT} is in use: this test needs it (upstream's debugger port)"
    d = Driver(bed, FAILING, "--debug-hook-attach", ATTACH, "--global-timeout", "300")
    try:
        m = d.wait_for_line(r"Breakpoint reached \(the test script failed: AssertionError: doubled is 84\), "
                            r"run 'sudo " + re.escape(ATTACH) + r" (\d+)'")
        pattern = m.group(1)
        d.wait_for_line(r"a Python debugger \(pdb\) waits on 127\.0\.0\.1:4444 .*nc 127\.0\.0\.1 4444")
        # Upstream's marker for its attach tool: `sleep PATTERN`, a child of the driver.
        deadline = time.monotonic() + 10  # (/proc can be slow to show it on a loaded machine)
        found = markers(pattern)
        while len(found) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            found = markers(pattern)
        assert len(found) == 1, f"no process `sleep {pattern}` (or more than one: {found}); the driver said:\n{d.stderr}"
        [marker] = found
        assert int(open(f"/proc/{marker}/stat").read().rsplit(")", 1)[1].split()[1]) == d.proc.pid
        pdb = Pdb()
        where = pdb.read_prompt()
        # At the script's failing line, in its frame (not inside the driver).
        assert 'assert doubled == 0, f"doubled is {doubled}"' in where, where
        assert pdb.command("p some_variable").strip() == "42"
        assert pdb.command("p doubled").strip() == "84"
        assert pdb.command("p value + 1").strip() == "43"
        assert "check(some_variable)" in pdb.command("up")
        assert pdb.closed_after("c")
        assert d.finish() == 1
    finally:
        d.stop()
    assert "debugger attached from 127.0.0.1:" in d.stderr and "debugger detached" in d.stderr
    assert "test script failed: doubled is 84" in d.stderr
    assert "never here" not in d.out
    assert gone(marker) and not markers(pattern)
    assert port_free()


BREAKPOINT = """\
x = 1
debug.breakpoint()
x = 2
print(f"after the breakpoint x is {x}")
"""


def test_breakpoint_stops_at_the_next_line_and_continue_goes_on(bed):
    assert port_free(), f"127.0.0.1:{PORT} is in use: this test needs it (upstream's debugger port)"
    d = Driver(bed, BREAKPOINT, "--debug-hook-attach", ATTACH, "--global-timeout", "300")
    try:
        d.wait_for_line(r"^.*Breakpoint reached, run 'sudo " + re.escape(ATTACH) + r" \d+'")
        pdb = Pdb()
        assert "-> x = 2" in pdb.read_prompt()
        assert pdb.command("p x").strip() == "1"
        assert "-> print(" in pdb.command("next")
        assert pdb.command("p x").strip() == "2"
        assert pdb.closed_after("continue")
        assert d.finish() == 0, d.stderr
    finally:
        d.stop()
    assert "after the breakpoint x is 2" in d.out


def test_nobody_attaches_and_the_global_timeout_ends_the_run(bed):
    assert port_free(), f"127.0.0.1:{PORT} is in use: this test needs it (upstream's debugger port)"
    started = time.monotonic()
    d = Driver(bed, "assert 1 == 2, 'boom'\n", "--debug-hook-attach", ATTACH, "--global-timeout", "4")
    try:
        pattern = d.wait_for_line(r"Breakpoint reached .*boom.*run 'sudo \S+ (\d+)'").group(1)
        assert d.finish(timeout=30) == 1
    finally:
        d.stop()
    took = time.monotonic() - started
    assert took < 20, f"the run took {took:.1f} s with a 4 s global timeout"
    assert "nobody attached to the debugger on 127.0.0.1:4444 (GlobalTimeout: global timeout of 4 seconds reached" \
        in d.stderr, d.stderr
    assert "global timeout of 4 seconds reached: test terminating" in d.stderr
    assert not markers(pattern) and port_free()


def test_without_the_flag_nothing_is_served(bed):
    r = bed.run_driver("debug.breakpoint()\nprint('went on')\nassert False, 'fails at once'\n", args=["--"],
                       timeout=60)
    assert r.returncode == 1
    assert "went on" in r.stdout and "Breakpoint reached" not in r.stderr
    assert "fails at once" in r.stderr


def test_the_debugger_listens_on_loopback_only(bed):
    r = bed.run_driver("try:\n    debug.breakpoint(host='0.0.0.0')\nexcept ValueError as e:\n    print('refused:', e)\n",
                       args=["--debug-hook-attach", ATTACH, "--"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert "refused: debug.breakpoint: the debugger listens on a loopback address only (127.0.0.1, ::1, " \
           "localhost), not '0.0.0.0'" in r.stdout


def test_the_port_in_use_is_named_and_the_scripts_error_stays(bed):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the other tests' TIME_WAIT
        s.bind(("127.0.0.1", PORT))
        s.listen(1)
        r = bed.run_driver("assert False, 'the real error'\n", args=["--debug-hook-attach", ATTACH, "--"], timeout=60)
    assert r.returncode == 1
    assert "debug hook: [Errno 98] cannot serve the debugger on 127.0.0.1:4444: Address already in use" in r.stderr
    assert "test script failed: the real error" in r.stderr
