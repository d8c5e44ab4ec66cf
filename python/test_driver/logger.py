# mypy: no-implicit-reexport
"""The driver's log (terminal and $LOGFILE XML) and its global `rootlog`."""
from __future__ import annotations

import os

from test_driver import _core
from test_driver._core import LogNest

# Not typing.TYPE_CHECKING: importing typing costs start-up time.
# (Line 1 tells mypy that imported names are not this module's own, so
# stubtest does not look for them at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Logger", "LogNest", "Subtest", "rootlog"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# The exception that last left a subtest (its id): it is that subtest's
# failure, not also one of "main" when it goes on to end the script.
_escaped_from_subtest = 0


def _is_own_frame(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) == _PACKAGE_DIR


def format_exception(type_: type[BaseException], value: BaseException, trace: TracebackType | None) -> str:
    """The exception as Python prints it, without the frames of this package:
    a traceback shows the test script's frames, never the driver's."""
    import traceback

    formatted = traceback.TracebackException(type_, value, trace, compact=True)
    pending: list[traceback.TracebackException | None] = [formatted]
    seen = set()
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.stack = traceback.StackSummary.from_list([f for f in exc.stack if not _is_own_frame(f.filename)])
        pending += [exc.__cause__, exc.__context__, *(getattr(exc, "exceptions", None) or [])]  # groups
    return "".join(formatted.format())


def _record(type_: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None,
            message: object = None) -> None:
    """Records an exception on the JUnit report's current case (a subtest,
    else "main"): an Exception as a <failure>, another BaseException (Ctrl-C,
    the global timeout) as an <error>; SystemExit(0) is none. Without a JUnit
    or HTML report, nothing (the problem would go nowhere)."""
    if type_ is None or not (rootlog.has_junit or rootlog.has_html_report):
        return
    if _depth == 0 and id(value) == _escaped_from_subtest:
        return
    if issubclass(type_, SystemExit):
        code = getattr(value, "code", None)
        if code is None or (isinstance(code, int) and code == 0):
            return
    kind = "failure" if issubclass(type_, Exception) else "error"
    name = str(type_.__name__)
    text = str(value) if message is None else str(message)
    details = format_exception(type_, value, trace)  # type: ignore[arg-type]
    rootlog.record_problem(kind, name, text or name, details)


class Logger(_core.Logger):
    """The driver's log: terminal and XML log file."""

    # --keep-going: a failing top-level subtest is recorded here (its name and
    # error) and the script goes on after it; the run fails at the end.
    keep_going = False
    failed_subtests: list[tuple[str, str]]

    def __init__(self) -> None:
        super().__init__()
        self.failed_subtests = []

    def record_failure(self, error: BaseException, message: str | None = None) -> None:
        """Record an exception on the JUnit report's current case (the open subtest, else 'main')."""
        _record(type(error), error, getattr(error, "__traceback__", None), message)


# Subtests open now (a subtest is top-level when it opens at 0).
_depth = 0


class Subtest:
    """`with subtest(name):` groups log lines, and is a case of the JUnit
    report (--junit-xml). An exception inside fails it: an Exception is
    logged as 'Test "<name>" failed with error: "<error>"'. It is raised on,
    except with --keep-going at a top-level subtest: there the failure is
    recorded (rootlog.failed_subtests) and the script goes on after the block."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        global _depth
        rootlog.begin_subtest(self.name)
        _depth += 1

    def __exit__(self, type_: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> bool:
        global _escaped_from_subtest, _depth
        if type_ is not None and issubclass(type_, Exception):
            rootlog.error(f'Test "{self.name}" failed with error: "{value}"')
        if type_ is not None:
            _record(type_, value, trace)
            _escaped_from_subtest = id(value)
        _depth -= 1
        rootlog.end_subtest(type_ is not None)
        if _depth == 0 and rootlog.keep_going and type_ is not None and issubclass(type_, Exception):
            rootlog.failed_subtests.append((self.name, f"{type_.__name__}: {value}"))
            return True  # on with the script
        return False


rootlog = Logger()
