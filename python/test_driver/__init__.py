# mypy: no-implicit-reexport
"""The NixOS test driver, reimplemented in C++ (test_driver._core).

The submodules keep the reference's layout: test_driver.machine,
test_driver.driver, test_driver.logger, test_driver.polling_condition,
test_driver.vlan, plus test_driver.errors.
"""
# Annotations stay strings: importing typing and pathlib here would cost a
# third of the driver's start-up.
from __future__ import annotations

import os

# Not typing.TYPE_CHECKING: importing typing is what this module avoids.
# (Line 1 tells mypy that imported names are not this module's own, so
# stubtest does not look for them at run time.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["generate_driver_symbols", "run_cli"]


def generate_driver_symbols(path: str | os.PathLike[str] = "driver-symbols") -> list[str]:
    """Write the names a test script sees (without machine and VLAN names),
    comma-separated, to `path` (default: ./driver-symbols, as the reference
    driver), for linting test scripts: PYFLAKES_BUILTINS=$(cat driver-symbols)
    python3 -m pyflakes script.py. Returns the names.
    """
    from test_driver.driver import Driver

    with Driver([], [], "", ".") as driver:
        names = list(driver.test_symbols().keys())
    with open(path, "w") as fp:
        fp.write(",".join(names))
    return names


# C's isspace(): how the driver always split $startScripts and $vlans, and
# what strtod() and stoi() skip.
_C_SPACE = " \t\n\v\f\r"


def _env_words(name: str) -> list[str]:
    """The whitespace-separated words of an environment variable."""
    return [os.fsdecode(w) for w in os.environb.get(name.encode(), b"").split()]


def _env_seconds(text: str) -> float:
    """strtod() of all of `text` (decimal or hexadecimal); -1 when that is not a number."""
    s = text.lstrip(_C_SPACE)
    unsigned = s[1:] if s[:1] in ("+", "-") else s
    if not s.isascii() or "_" in s or s[-1:].isspace() or unsigned[:1] in ("+", "-"):
        return -1.0
    try:
        return float.fromhex(s) if unsigned[:2].lower() == "0x" else float(s)
    except ValueError:
        return -1.0


def _vlan_number(text: str) -> int | None:
    """stoi() of all of `text`: a decimal int, else None."""
    s = text.lstrip(_C_SPACE)
    digits = s[1:] if s[:1] in ("+", "-") else s
    if not digits.isascii() or not digits.isdigit():
        return None
    n = int(s)
    return n if -(2**31) <= n < 2**31 else None


def _start_script_problem(script: str) -> str | None:
    """Why `script` cannot be run as a start script (None when it can). As
    the core runs it: an existing path is the program; anything else is a
    command line whose first word is looked up in $PATH unless it has a slash."""
    program = script if os.path.exists(script) else (script.split() or [""])[0]
    if "/" in program or os.path.exists(program):
        candidates = [program]
    else:
        candidates = [os.path.join(d or ".", program) for d in os.environ.get("PATH", os.defpath).split(os.pathsep)]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return None
    if len(candidates) != 1:
        return "is not found in $PATH"
    if not os.path.exists(program):
        return "does not exist"
    if os.path.isdir(program):
        return "is a directory"
    return "is not executable"


def _script_threads() -> list[Any]:
    """The test script's non-daemon threads still running (none unless it imported threading)."""
    import sys

    threading = sys.modules.get("threading")
    if threading is None:
        return []
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


class _SetUpFailed(Exception):
    """The Driver could not be made (machines, VLANs, state directories)."""


def run_cli(options: dict[str, Any], run_repl: Callable[[dict[str, Any]], None]) -> int:
    """The nixos-test-driver executable once its command line is parsed
    (src/cli/main.cc): check the options, run the test script (or
    `run_repl(symbols)` with -I) and clean up. Returns the exit status: 2 for
    a usage error or a set-up that failed before the script ran, 1 when the
    script failed or timed out, 130 when it was interrupted, a SystemExit's
    code.

    `options` holds the flags by their long names (keep_vm_state,
    interactive, start_scripts, vlans, output_directory, global_timeout,
    config, junit_xml, html_report, keep_going, log_level, boot_cache, video,
    debug_hook_attach, generate_driver_symbols, testscript), None for those not given: those
    come from the -c/--config file, else the environment ($startScripts,
    $vlans, $globalTimeout, $logLevel, $testScript), else the defaults.

    At the end of every run (also one that failed, timed out or was
    interrupted) the timing profile is logged and the reports are written.
    """
    import sys
    import time

    def usage_error(message: str) -> int:
        sys.stderr.write(f"nixos-test-driver: error: {message}\n")
        return 2

    from test_driver import _core
    from test_driver.errors import Error

    # The core's logger opens $LOGFILE when it is made, i.e. here.
    try:
        from test_driver.logger import format_exception, rootlog
    except Error as e:
        return usage_error(f"$LOGFILE: {e}")

    if options["generate_driver_symbols"]:
        generate_driver_symbols()
        return 0

    # Command-line flags win over the config file, which wins over the environment.
    from_config = None
    config_path = options["config"]
    if config_path:
        from test_driver.config import ConfigError, load_config

        try:
            from_config = load_config(config_path)
        except ConfigError as e:
            return usage_error(f"argument -c/--config: {e}")
        except Exception as e:
            return usage_error(f"argument -c/--config: {config_path}: {e}")

    start_scripts: list[str] | None = options["start_scripts"]
    if start_scripts is None:
        if from_config and from_config.start_scripts is not None:
            start_scripts = from_config.start_scripts
        else:
            start_scripts = _env_words("startScripts")
    vlans: list[str] | None = options["vlans"]
    vlan_numbers: list[int] | None = None
    if vlans is None:
        if from_config and from_config.vlans is not None:
            vlan_numbers, vlans = from_config.vlans, []
        else:
            vlans = _env_words("vlans")
    testscript: str | None = options["testscript"]
    if testscript is None:
        if from_config and from_config.test_script is not None:
            testscript = from_config.test_script
        else:
            testscript = os.environ.get("testScript", "")
    global_timeout: float | None = options["global_timeout"]
    if global_timeout is None:
        if from_config and from_config.global_timeout is not None:
            global_timeout = from_config.global_timeout
        elif "globalTimeout" in os.environ:
            global_timeout = _env_seconds(os.environ["globalTimeout"])
        else:
            global_timeout = 3600.0
    log_level: str | None = options["log_level"]
    if log_level is None:
        log_level = os.environ.get("logLevel") or "info"

    try:
        rootlog.level = log_level  # the core's parser: debug, info, warning (warn), error, in any case
    except ValueError:
        return usage_error(f"argument --log-level ($logLevel): invalid choice: '{log_level}' "
                           "(choose from 'debug', 'info', 'warning', 'error')")
    if not global_timeout > 0 or global_timeout > 1e9:
        return usage_error("argument --global-timeout ($globalTimeout): a positive number of seconds is required")
    if not testscript:
        return usage_error("the following arguments are required: testscript (or $testScript)")
    if vlan_numbers is None:
        vlan_numbers = []
        for v in vlans:
            nr = _vlan_number(v)
            if nr is None:
                return usage_error(f"argument --vlans: invalid VLAN number: '{v}'")
            vlan_numbers.append(nr)
    out_dir: str | None = options["output_directory"]
    if out_dir is None:
        out_dir = os.getcwd()
    if not os.path.isdir(out_dir):
        return usage_error(f"argument -o/--output_directory: {out_dir} is not a directory")
    if not os.access(out_dir, os.W_OK):
        return usage_error(f"argument -o/--output_directory: {out_dir} is not a writeable directory")
    junit_path = None
    if options["junit_xml"]:
        junit_path = os.path.abspath(os.path.join(out_dir, options["junit_xml"]))
        parent = os.path.dirname(junit_path)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            return usage_error(f"argument --junit-xml: {parent} is not a writeable directory")
    html_report: str | None = options.get("html_report")
    if html_report is None and from_config is not None:
        html_report = from_config.html_report
    report_path = None
    if html_report:
        report_path = os.path.abspath(os.path.join(out_dir, html_report))
        parent = os.path.dirname(report_path)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            return usage_error(f"argument --html-report: {parent} is not a writeable directory")
    keep_going = bool(options.get("keep_going"))
    if not keep_going and from_config is not None and from_config.keep_going:
        keep_going = True
    # The boot cache reaches the machines through the environment, as
    # $TEST_DRIVER_BOOT_CACHE does when the flag is not given.
    boot_cache = options.get("boot_cache")
    if boot_cache is None:
        boot_cache = os.environ.get("TEST_DRIVER_BOOT_CACHE") or None
    if boot_cache is not None:
        boot_cache = os.path.abspath(boot_cache)
        try:
            os.makedirs(boot_cache, exist_ok=True)
        except OSError as e:
            return usage_error(f"argument --boot-cache ($TEST_DRIVER_BOOT_CACHE): cannot use {boot_cache}: {e.strerror}")
        if not os.access(boot_cache, os.W_OK):
            return usage_error(f"argument --boot-cache ($TEST_DRIVER_BOOT_CACHE): {boot_cache} is not writeable")
        os.environ["TEST_DRIVER_BOOT_CACHE"] = boot_cache
    # --video reaches the machines through the environment, as
    # $TEST_DRIVER_VIDEO=1 does when neither the flag nor the file sets it.
    video = options.get("video")
    if video is None and from_config is not None:
        video = from_config.video
    if video is None:
        video = os.environ.get("TEST_DRIVER_VIDEO") == "1"
    if video:
        if _start_script_problem("ffmpeg"):
            return usage_error("argument --video: ffmpeg is not found in $PATH (Debian package ffmpeg)")
        os.environ["TEST_DRIVER_VIDEO"] = "1"
    else:
        os.environ.pop("TEST_DRIVER_VIDEO", None)
    # Before any machine is made: a start script that cannot run, and a
    # TMPDIR that is not a writeable directory (the core never creates one).
    for script in start_scripts:
        problem = _start_script_problem(script)
        if problem:
            return usage_error(f"argument --start-scripts: the start script {script} {problem}")
    try:
        _core.get_tmp_dir()
    except Error as e:
        return usage_error(str(e))
    try:
        with open(testscript, "rb") as fp:
            source = fp.read()
    except OSError as e:
        return usage_error(f"cannot read the test script {testscript}: {e.strerror}")
    try:
        tests = source.decode("utf-8")
    except UnicodeDecodeError as e:
        return usage_error(f"the test script {testscript} is not UTF-8 text: {e}")

    status = 0
    started = time.monotonic()
    owner = os.getpid()  # only this process cleans up the machines and closes the log
    try:
        # _signal, not signal: the latter imports enum, a tenth of the start-up.
        if TYPE_CHECKING:
            import signal as _signal
        else:
            import _signal

        # SIGTERM ends the run like Ctrl-C: the script unwinds and cleanup runs.
        _signal.signal(_signal.SIGTERM, _signal.default_int_handler)
        # So does SIGHUP: a closed terminal must not orphan the machines.
        _signal.signal(_signal.SIGHUP, _signal.default_int_handler)
        # Written by rootlog.close(), which every way out of the run reaches.
        if junit_path:
            rootlog.open_junit(junit_path)
        if report_path:
            rootlog.open_html_report(report_path, f"NixOS test {os.path.basename(testscript)}")
        rootlog.set_script_path(testscript)
        rootlog.keep_going = keep_going
        from test_driver.driver import Driver, GlobalTimeout

        if not options["keep_vm_state"]:
            rootlog.info("Machine state will be reset. To keep it, pass --keep-vm-state")
        # The global timeout is SIGALRM with a Python handler: Python's signal
        # wakeup fd is the core's interrupt pipe, so it cuts any wait short,
        # and the handler's exception (a BaseException, like
        # KeyboardInterrupt) unwinds the script.
        timeout_message = "global timeout of %g seconds reached: test terminating" % global_timeout

        def on_alarm(signum: int, frame: object) -> None:
            raise GlobalTimeout(timeout_message)

        # --debug-hook-attach: a debugger at debug.breakpoint() and on a
        # failure, until the global timeout (when it is on: not with -I).
        from test_driver.debug import Debug, DebugAbstract, DebugNop

        debug: DebugAbstract = DebugNop()
        attach = options.get("debug_hook_attach")
        if attach is not None:
            debug = Debug(attach, timeout=global_timeout,
                          deadline=None if options["interactive"] else started + global_timeout)

        driver = None
        try:
            if not options["interactive"]:
                _signal.signal(_signal.SIGALRM, on_alarm)
                _signal.setitimer(_signal.ITIMER_REAL, global_timeout)
            try:
                driver = Driver(start_scripts, vlan_numbers, tests, os.path.abspath(out_dir),
                                options["keep_vm_state"], debug=debug)
            except Error as e:
                raise _SetUpFailed(str(e)) from None
            driver._script_path = testscript
            if options["interactive"]:
                run_repl(driver.test_symbols())
            else:
                tic = time.monotonic()
                driver.run_tests()
                rootlog.info("test script finished in %.2fs" % (time.monotonic() - tic))
            rootlog.set_outcome("passed")
        except BaseException as error:
            # The JUnit report's "main" case, unless a subtest already has it.
            rootlog.record_failure(error)
            if isinstance(error, GlobalTimeout):
                rootlog.error(timeout_message)
                rootlog.set_outcome("timed out", timeout_message)
                status = 1
            elif isinstance(error, KeyboardInterrupt):
                rootlog.error("interrupted: cleaning up")
                rootlog.set_outcome("interrupted", "interrupted (Ctrl-C, SIGTERM or SIGHUP)")
                status = 130
            elif isinstance(error, _SetUpFailed):
                # The machines or VLANs could not be made from the start
                # scripts and TMPDIR: bad input, found before the script ran.
                rootlog.error(f"cannot set up the test: {error}")
                rootlog.set_outcome("failed", f"cannot set up the test: {error}")
                status = 2
            elif isinstance(error, SystemExit):
                code = error.code
                status = 0 if code is None else int(code) if isinstance(code, int) else 1
                rootlog.set_outcome("passed" if status == 0 else "failed", f"the test script exited with {code}")
            else:
                sys.stderr.write(format_exception(type(error), error, error.__traceback__))
                rootlog.error(f"test script failed: {error}")
                rootlog.set_outcome("failed", f"test script failed: {type(error).__name__}: {error}")
                status = 1
        # --keep-going: every failed top-level subtest, and the run fails.
        failed_subtests = rootlog.failed_subtests
        if failed_subtests:
            summary = "%d subtest%s failed: %s" % (len(failed_subtests), "s" if len(failed_subtests) > 1 else "",
                                                  ", ".join(name for name, _ in failed_subtests))
            rootlog.error(summary)
            for name, message in failed_subtests:
                rootlog.error(f'  "{name}": {message}')
            if status == 0:
                rootlog.set_outcome("failed", summary)
                status = 1
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        if os.getpid() != owner:
            # A fork of the driver (the script called os.fork()) ending: the
            # machines and the log are the driver's to clean up, and even
            # destroying its copies of the channels would unregister them
            # from the event loops it shares with the driver (epoll).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        if driver is not None:
            # Cleanup is not interruptible (it is bounded); a signal that
            # arrives meanwhile surfaces after it, and must not skip closing
            # the log.
            try:
                driver.cleanup()
            except KeyboardInterrupt:
                rootlog.error("interrupted during cleanup (cleanup finished)")
                status = status or 130
        # Threads the script started and left running: Python would wait for
        # them for ever at exit. They get what is left of the global timeout.
        left = _script_threads()
        if left:
            rootlog.info("waiting for the test script's threads: " + ", ".join(t.name for t in left))
            try:
                for thread in left:
                    thread.join(max(0.0, started + global_timeout - time.monotonic()))
                left = _script_threads()
                if left:
                    rootlog.error("global timeout of %g seconds reached with threads of the test script still "
                                  "running: %s; exiting without them" % (global_timeout,
                                                                         ", ".join(t.name for t in left)))
                    status = status or 1
            except KeyboardInterrupt:
                # (An interrupted join may leave is_alive() wrong: not asked again.)
                rootlog.error("interrupted while waiting for the test script's threads: %s"
                              % ", ".join(t.name for t in left))
                status = 130
        for line in rootlog.timing_profile():
            rootlog.info(line)
        rootlog.close()
        if rootlog.write_error:
            # Lines were lost (a full disk): whatever the script did, the run did not pass.
            sys.stderr.write(f"nixos-test-driver: error: {rootlog.write_error}; the run fails\n")
            status = status or 1
        if left:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    except BaseException as error:
        sys.stderr.write(format_exception(type(error), error, error.__traceback__))
        status = status or 1
    return status
