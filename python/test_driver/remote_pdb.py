# mypy: no-implicit-reexport
"""pdb over one TCP connection: what the debug hook (test_driver.debug)
serves, in place of upstream's remote_pdb (not packaged by Debian).
Imported only when a debugger is served (pdb costs start-up time)."""
from __future__ import annotations

import pdb
import socket
import time

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType, TracebackType

__all__ = ["SLICE", "Connection", "RemotePdb"]

# How long one wait on a socket blocks before Python handles pending signals
# (the global timeout's SIGALRM, Ctrl-C), whichever thread got them.
SLICE = 0.25


class Connection:
    """The debugger's stdin and stdout: lines over the TCP connection, CRLF
    out (for telnet and nc), CR dropped in. A read waits in slices of SLICE
    seconds until `ends` (a time.monotonic() value), then raises TimeoutError;
    the other side closing is end of file."""

    def __init__(self, sock: socket.socket, ends: float) -> None:
        self._sock = sock
        self._ends = ends
        self._buffer = b""
        self.closed = False

    def readline(self) -> str:
        if self.closed:
            return ""
        while b"\n" not in self._buffer:
            if time.monotonic() >= self._ends:
                raise TimeoutError("the debugger got no command before the global timeout")
            self._sock.settimeout(SLICE)
            try:
                data = self._sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:  # the other side left: pdb reads the end of file
                line, self._buffer = self._buffer, b""
                return line.decode("utf-8", "replace")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace") + "\n"

    def write(self, text: str) -> int:
        if not self.closed:
            self._sock.settimeout(30.0)
            try:
                self._sock.sendall(text.replace("\n", "\r\n").encode("utf-8", "replace"))
            except OSError:
                self.close()  # the other side left (or stopped reading for 30 s)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()


class RemotePdb(pdb.Pdb):
    """pdb on a Connection. The session ends (the connection closes) when the
    debugger lets the script go on with no breakpoint left, or quits.
    `script_path`, when set, makes the next stop (a post mortem) start at the
    innermost frame of the test script rather than inside the driver."""

    def __init__(self, connection: Connection) -> None:
        # nosigint: Ctrl-C stays the driver's. readrc: no .pdbrc of the
        # working directory runs in the driver. skip: stepping goes over the
        # driver's own frames.
        super().__init__(stdin=connection, stdout=connection, nosigint=True, readrc=False,  # type: ignore[arg-type]
                         skip=["test_driver", "test_driver.*"])
        self.use_rawinput = False
        self.prompt = "(Pdb) "
        self.connection = connection
        self.script_path: str | None = None

    def setup(self, f: FrameType | None, tb: TracebackType | None) -> None:
        super().setup(f, tb)
        if self.script_path is not None:
            for index in range(len(self.stack) - 1, -1, -1):
                frame = self.stack[index][0]
                if frame.f_code.co_filename == self.script_path:
                    self.curindex, self.curframe = index, frame
                    self.curframe_locals = frame.f_locals
                    break
            self.script_path = None

    def set_continue(self) -> None:
        super().set_continue()
        if not self.breaks:
            self.end_session()

    def set_quit(self) -> None:
        super().set_quit()
        self.end_session()

    def end_session(self) -> None:
        """Close the connection (once), and say so in the log."""
        if not self.connection.closed:
            self.connection.close()
            from test_driver.logger import rootlog

            rootlog.info("debugger detached")
