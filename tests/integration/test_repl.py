"""`nixos-test-driver -I` used as a person would: in a terminal (tmux),
typing keys (send-keys) and reading the screen (capture-pane).

The plain console is forced with TD_REPL=console, so the tests do not depend
on whether ptpython or IPython happen to be installed; the automatic choice
is checked with stand-in ptpython and IPython modules on PYTHONPATH.
"""
import os
import re
import shlex
import subprocess
import time
import uuid

import pytest

from conftest import Bed, driver_exe, require_tools


class Terminal:
    """One tmux server of our own (-L) with one pane running a command."""

    def __init__(self, argv, cwd, env, width=200, height=50):
        require_tools("tmux")
        self.socket = f"td-repl-{uuid.uuid4().hex[:8]}"
        env_args = [f"{k}={v}" for k, v in env.items()]
        # `env -i` so the pane sees exactly `env`, not the tmux server's.
        # The shell reports the exit status on the screen once the command ended.
        # (trap: the shell outlives Ctrl-C; its child gets the default handler.)
        wrapper = 'trap : INT; env -i "$@"; echo "TD-EXIT-STATUS=$?"'
        command = " ".join(shlex.quote(a) for a in ["sh", "-c", wrapper, "sh", *env_args, *argv])
        # remain-on-exit: the screen stays readable after the command ended.
        self.tmux("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
                  "set-option", "-g", "history-limit", "10000", ";",
                  "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), "-c", str(cwd), command)

    def tmux(self, *args) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, stdout=subprocess.PIPE,
                              text=True).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self) -> str:
        """The pane, with its scroll-back, trailing blanks stripped."""
        text = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")
        return "\n".join(line.rstrip() for line in text.rstrip().splitlines())

    def wait_for(self, pattern, timeout=20, after=0) -> re.Match:
        """Waits until `pattern` (regex) shows in the screen text past offset `after`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            match = re.compile(pattern, re.M).search(text, after)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{text}")
            time.sleep(0.2)

    def pane(self, fmt) -> str:
        return self.tmux("display-message", "-p", "-t", "t", fmt).strip()

    def wait_exit(self, timeout=60) -> int:
        """Waits for the command to end; returns its exit status."""
        return int(self.wait_for(r"^TD-EXIT-STATUS=(\d+)$", timeout=timeout).group(1))

    def close(self):
        # Leave the REPL properly first, so the driver kills its machines
        # (a SIGHUP from kill-server would not let it clean up).
        try:
            if not re.search(r"^TD-EXIT-STATUS=", self.screen(), re.M):
                self.keys("C-c")
                time.sleep(0.3)
                self.keys("C-d")
                time.sleep(0.5)
                if re.search(r"Do you really want to exit\?", self.screen()):  # ptpython asks
                    self.type("y")
                self.wait_exit(timeout=15)
        except (AssertionError, subprocess.CalledProcessError):
            pass
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], stderr=subprocess.DEVNULL)


def repl_env(bed: Bed, **extra) -> dict:
    env = {k: v for k, v in bed.env().items()
           if k in ("PATH", "HOME", "TMPDIR", "ACCEL", "NO_COLOR", "PYTHONPATH", "LANG", "LC_ALL")}
    env["TERM"] = "xterm"
    env.update(extra)
    return env


@pytest.fixture
def terminal():
    terminals = []

    def start(*args, **kw):
        t = Terminal(*args, **kw)
        terminals.append(t)
        return t

    yield start
    for t in terminals:
        t.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_session_with_a_machine(bed, terminal):
    script = bed.script("mini", "machine")
    empty = bed.root / "empty.py"
    empty.write_text("")
    term = terminal([driver_exe(), "-I", "--start-scripts", script, "--", str(empty)], bed.root,
                    repl_env(bed, TD_REPL="console"))
    term.wait_for(r"^>>>")

    # Serial console lines would garble the prompt: turn them off first.
    term.type("serial_stdout_off()")
    term.keys("Enter")
    term.type("start_all(); print('QEMU', machine.pid)")
    term.keys("Enter")
    qemu_pid = int(term.wait_for(r"^QEMU (\d+)$", timeout=30).group(1))
    assert pid_alive(qemu_pid)
    term.type('machine.succeed("uname -a")')
    term.keys("Enter")
    term.wait_for(r"^'Linux machine .*\\n'\n>>>", timeout=120)

    # Tab completes attributes of the script's names.
    term.type("machine.wait_until_su")
    term.keys("Tab")
    term.wait_for(r"^>>> machine\.wait_until_succeeds\($")
    term.type('"false", timeout=600)')
    term.keys("Enter")
    waiting = term.wait_for(r"waiting for success: false")
    time.sleep(2)
    # Ctrl-C ends the wait (not the machine) and gives the prompt back.
    term.keys("C-c")
    term.wait_for(r"^KeyboardInterrupt\n>>>", after=waiting.end(), timeout=20)
    assert pid_alive(qemu_pid)
    # A Ctrl-C at the prompt does not cut the next command short.
    term.keys("C-c")
    time.sleep(0.5)
    term.type('machine.succeed("echo $((6*7))")')
    term.keys("Enter")
    term.wait_for(r"^'42\\n'\n>>>", timeout=30)

    # Ctrl-D leaves; the driver cleans up and exits 0.
    term.keys("C-d")
    assert term.wait_exit() == 0
    screen = term.screen()
    assert f"kill machine (pid {qemu_pid})" in screen
    assert "machine # " not in screen  # no serial console lines
    deadline = time.monotonic() + 10
    while pid_alive(qemu_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(qemu_pid), "QEMU outlived the driver"
    history = (bed.root / ".nixos-test-history").read_text().splitlines()
    assert 'machine.succeed("uname -a")' in history
    assert history[-1] == 'machine.succeed("echo $((6*7))")'
    print(screen)


def test_history_is_read_and_ctrl_c_at_the_prompt(bed, terminal):
    empty = bed.root / "empty.py"
    empty.write_text("")
    (bed.root / ".nixos-test-history").write_text("print('from' + ' history')\n")
    term = terminal([driver_exe(), "-I", str(empty)], bed.root, repl_env(bed, TD_REPL="console"))
    term.wait_for(r"^>>>")
    term.type("half-typed")
    term.keys("C-c")
    term.wait_for(r"^KeyboardInterrupt\n>>>$")
    term.keys("Up")
    term.wait_for(r"^>>> print\('from' \+ ' history'\)$")
    term.keys("Enter")
    term.wait_for(r"^from history\n>>>$")
    term.type("for i in range(2):")
    term.keys("Enter")
    term.type("    print('line', i)")
    term.keys("Enter", "Enter")
    term.wait_for(r"^line 0\nline 1\n>>>$")
    term.type("exit(3)")
    term.keys("Enter")
    assert term.wait_exit() == 3
    assert (bed.root / ".nixos-test-history").read_text().splitlines()[-1] == "exit(3)"


HIDDEN_MODULE = 'raise ImportError("hidden by the test")\n'
FAKE_PTPYTHON = '''
def embed(globals, locals, **kw):
    print("FAKE ptpython", "start_all" in globals, locals)
'''
FAKE_IPYTHON = '''
def start_ipython(argv=None, user_ns=None, **kw):
    print("FAKE IPython", argv, "start_all" in user_ns)
'''


@pytest.mark.parametrize("modules,td_repl,expected", [
    (["ptpython", "IPython"], None, "FAKE ptpython True {}"),
    (["IPython"], None, "FAKE IPython [] True"),
    (["ptpython", "IPython"], "ipython", "FAKE IPython [] True"),
    (["ptpython", "IPython"], "console", ">>>"),
    ([], "ptpython", "ptpython is not installed; using the plain console"),
])
def test_which_repl(bed, terminal, modules, td_repl, expected):
    fake = bed.root / "fake"
    (fake / "ptpython").mkdir(parents=True)
    (fake / "IPython").mkdir(parents=True)
    # A module left out is hidden, not merely absent: the host may have the
    # real ptpython or IPython installed.
    if "ptpython" in modules:
        (fake / "ptpython" / "__init__.py").write_text("")
        (fake / "ptpython" / "repl.py").write_text(FAKE_PTPYTHON)
    else:
        (fake / "ptpython" / "__init__.py").write_text(HIDDEN_MODULE)
    if "IPython" in modules:
        (fake / "IPython" / "__init__.py").write_text(FAKE_IPYTHON)
    else:
        (fake / "IPython" / "__init__.py").write_text(HIDDEN_MODULE)
    empty = bed.root / "empty.py"
    empty.write_text("")
    env = repl_env(bed, PYTHONPATH=str(fake))
    if td_repl:
        env["TD_REPL"] = td_repl
    term = terminal([driver_exe(), "-I", str(empty)], bed.root, env)
    term.wait_for(re.escape(expected))
    if expected.startswith("FAKE"):
        assert term.wait_exit() == 0
    else:
        term.keys("C-d")
        assert term.wait_exit() == 0


def test_piped_stdin_uses_the_console_even_with_ptpython(bed):
    fake = bed.root / "fake" / "ptpython"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "repl.py").write_text(FAKE_PTPYTHON)
    empty = bed.root / "empty.py"
    empty.write_text("")
    r = subprocess.run([driver_exe(), "-I", str(empty)], env=bed.env(PYTHONPATH=str(bed.root / "fake")),
                       cwd=bed.root, input="print(6 * 7)\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "42" in r.stdout and "FAKE" not in r.stdout
    assert not (bed.root / ".nixos-test-history").exists()


def test_ptpython_with_a_machine(bed, terminal):
    """The real ptpython (Debian's package), picked by default: its own screen,
    the script's symbols completed, a command that reaches the guest, and
    the reference's history file."""
    import importlib.util
    if importlib.util.find_spec("ptpython") is None:
        raise RuntimeError("this test needs ptpython (Debian's package ptpython; tools/install-deps)")
    script = bed.script("mini", "machine")
    empty = bed.root / "empty.py"
    empty.write_text("")
    env = repl_env(bed)
    env.pop("TD_REPL", None)
    term = terminal([driver_exe(), "-I", "--start-scripts", script, "--", str(empty)], bed.root, env)
    # ptpython's toolbar: its key bindings and its menu.
    term.wait_for(r"\[F4\] Emacs .*\[F2\] Menu - CPython")
    term.type("serial_stdout_off()")
    term.keys("Enter")
    # ptpython offers the script's symbols and their attributes as one
    # types (its completion menu); Tab takes the first offer.
    term.type("start_a")
    term.wait_for(r"^ +start_all\(\)$")
    term.keys("Tab")
    term.wait_for(r"^>>> start_all$")
    term.type("()")
    term.keys("Enter")
    term.type("machine.succ")
    term.wait_for(r"^ +succeed\(\)$")
    term.keys("Tab")
    typed = term.wait_for(r"^>>> machine\.succeed$")
    term.type('("echo $((6*7)) from $(hostname)")')
    term.keys("Enter")
    term.wait_for(r"^'42 from machine\\n'$", after=typed.end(), timeout=120)
    # Ctrl-D asks ptpython's own question before leaving.
    term.keys("C-d")
    term.wait_for(r"Do you really want to exit\?")
    term.type("y")
    assert term.wait_exit() == 0
    # ptpython's FileHistory format: "+" before each line of an entry.
    history = (bed.root / ".nixos-test-history").read_text().splitlines()
    assert '+machine.succeed("echo $((6*7)) from $(hostname)")' in history
    assert "+start_all()" in history


def test_ipython_with_a_machine(bed, terminal):
    """The real IPython (Debian's python3-ipython) when TD_REPL=ipython: its
    numbered prompts, the script's symbols in its namespace, a command that
    reaches the guest with its value shown as IPython's Out, and its own
    question before leaving."""
    import importlib.util
    if importlib.util.find_spec("IPython") is None:
        raise RuntimeError("this test needs IPython (Debian's package python3-ipython; tools/install-deps)")
    script = bed.script("mini", "machine")
    empty = bed.root / "empty.py"
    empty.write_text("")
    env = repl_env(bed, TD_REPL="ipython")
    term = terminal([driver_exe(), "-I", "--start-scripts", script, "--", str(empty)], bed.root, env)
    term.wait_for(r"^In \[1\]:")
    term.type("serial_stdout_off(); start_all()")
    term.keys("Enter")
    term.wait_for(r"^In \[2\]:", timeout=120)
    term.type('machine.succeed("echo $((6*7)) from $(hostname)")')
    term.keys("Enter")
    term.wait_for(r"^Out\[2\]: '42 from machine\\n'$", timeout=120)
    term.type("type(machine).__name__")
    term.keys("Enter")
    term.wait_for(r"^Out\[3\]: 'Machine'$")
    term.keys("C-d")
    term.wait_for(r"Do you really want to exit \(\[y\]/n\)\?")
    term.type("y")
    term.keys("Enter")
    assert term.wait_exit() == 0
