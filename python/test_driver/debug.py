# mypy: no-implicit-reexport
"""The debug hook (upstream's test_driver.debug): `debug.breakpoint()` and,
with --debug-hook-attach, a Python debugger on a failing test script.

Upstream serves remote_pdb's RemotePdb; Debian has no remote-pdb, so this is
a pdb.Pdb whose input and output are one TCP connection on 127.0.0.1. Every
wait (for the connection, for the next command) is read in short slices, so
the global timeout's SIGALRM and Ctrl-C end it whichever thread the signal
arrives on, and each is bounded by the run's deadline.
"""
from __future__ import annotations

import os
import sys

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
# (Line 1 tells mypy that imported names are not this module's own, so
# stubtest does not look for them at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from test_driver.remote_pdb import RemotePdb

__all__ = ["Debug", "DebugAbstract", "DebugNop"]

class DebugAbstract:
    """What the test script's `debug` is."""

    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        """Stop the test script here and serve a debugger on host:port."""
        raise NotImplementedError

    def post_mortem(self, error: BaseException, script_path: str) -> None:
        """The test script failed with `error`: let a debugger look at where."""
        raise NotImplementedError


class DebugNop(DebugAbstract):
    """The test script's `debug` without --debug-hook-attach (upstream's
    DebugNop): breakpoint() does nothing, and a failing script just fails."""

    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        """Nothing: the debug hook is off (no --debug-hook-attach)."""

    def post_mortem(self, error: BaseException, script_path: str) -> None:
        """Nothing: the debug hook is off."""


class Debug(DebugAbstract):
    """The test script's `debug` with --debug-hook-attach ATTACH (upstream's
    Debug): at `debug.breakpoint()`, and when the test script fails, log
    "Breakpoint reached, run 'sudo ATTACH PATTERN'", start the marker process
    `sleep PATTERN` (how upstream's attach tool finds the build's sandbox) and
    serve a pdb on 127.0.0.1:4444 until one connection comes (`nc 127.0.0.1
    4444`). The attach command is printed, never run.

    Each wait ends when the run's global timeout does (`deadline`, a
    time.monotonic() value, set by the command line; else `timeout` seconds
    after the wait begins), or with Ctrl-C."""

    def __init__(self, attach_command: str, timeout: float = 3600.0, deadline: float | None = None) -> None:
        self.attach = attach_command
        self.timeout = timeout
        self.deadline = deadline
        # Upstream's attribute (unused there too).
        self.breakpoint_on_failure = False

    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        """Stop the test script at its next line and serve a debugger on
        host:port (a loopback address) until one attaches; `continue` goes on."""
        caller = sys._getframe().f_back
        debugger = self._attach(host, port, "Breakpoint reached")
        # The last call here: the debugger stops at the script's next line.
        debugger.set_trace(caller)

    def post_mortem(self, error: BaseException, script_path: str) -> None:
        """The test script failed with `error` (an Exception): serve a
        debugger on 127.0.0.1:4444 at the failing line of the script (its
        innermost frame in the traceback) until one attaches. Its own
        failures (the port is in use, nobody attached in time) are logged:
        the script's error stays the run's. Not for BdbQuit (the user quit a
        debugger)."""
        bdb = sys.modules.get("bdb")
        if bdb is not None and isinstance(error, bdb.BdbQuit):
            return  # the user quit a debugger: no second one
        from test_driver.logger import rootlog

        try:
            debugger = self._attach("127.0.0.1", 4444,
                                    f"Breakpoint reached (the test script failed: {type(error).__name__}: {error})")
        except Exception as e:
            rootlog.error(f"debug hook: {e}")
            return
        debugger.script_path = script_path
        try:
            debugger.reset()
            debugger.interaction(None, error.__traceback__)
        except Exception as e:  # its deadline passed with nothing typed
            rootlog.error(f"debug hook: {e}")
        finally:
            debugger.end_session()

    def _wait_ends(self) -> float:
        import time

        if self.deadline is not None:
            # The global timeout's SIGALRM ends the run first; this is in case it does not.
            return self.deadline + 2.0
        return time.monotonic() + self.timeout

    def _attach(self, host: str, port: int, reason: str) -> RemotePdb:
        """Log how to attach, listen on host:port and wait for one connection
        (with the marker process running); the debugger on it."""
        import random
        import shutil
        import socket
        import subprocess
        import time

        from test_driver.logger import rootlog
        from test_driver.remote_pdb import SLICE, Connection, RemotePdb

        address = _loopback(host)
        listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((address, port))
            except OSError as e:
                raise OSError(e.errno, f"cannot serve the debugger on {address}:{port}: {e.strerror}") from None
            listener.listen(1)
            listener.settimeout(SLICE)
            pattern = str(random.randrange(999999, 9999999))
            ends = self._wait_ends()
            left = self.timeout if self.deadline is None else self.deadline - time.monotonic()
            # Upstream's marker: its attach tool finds the process `sleep PATTERN`
            # and enters its namespaces (the build's sandbox). It reads $bashInteractive there.
            marker = subprocess.Popen(["sleep", pattern], stdin=subprocess.DEVNULL,
                                      env={**os.environ, "bashInteractive": shutil.which("bash") or "bash"})
            try:
                # Said once the listener and the marker are there.
                rootlog.error(f"{reason}, run 'sudo {self.attach} {pattern}'")
                rootlog.error(f"a Python debugger (pdb) waits on {address}:{port} for at most {max(left, 0):.0f} "
                              f"seconds (the global timeout): e.g. nc {address} {port}; `continue` goes on")
                while True:
                    if time.monotonic() >= ends:
                        raise TimeoutError(f"nobody attached to the debugger on {address}:{port} in time")
                    try:
                        connection, peer = listener.accept()
                        break
                    except socket.timeout:
                        continue
            except BaseException as e:
                if not isinstance(e, TimeoutError):
                    rootlog.error(f"nobody attached to the debugger on {address}:{port} "
                                  f"({type(e).__name__}: {e})")
                raise
            finally:
                marker.kill()
                marker.wait()
        finally:
            listener.close()
        rootlog.info(f"debugger attached from {peer[0]}:{peer[1]}")
        return RemotePdb(Connection(connection, ends))


def _loopback(host: str) -> str:
    """The loopback address `host` names; any other is an error (the
    debugger runs code for whoever connects)."""
    import ipaddress

    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"debug.breakpoint: the debugger listens on a loopback address only "
                     f"(127.0.0.1, ::1, localhost), not {host!r}")
