"""The test bed shared by tests/python and tests/integration.

Gives tests the real guest images (built or found in the cache by
tests/guests/build), start scripts made for them, and a temporary state and
output directory. A missing tool or image is an error naming it, never a
silent skip.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SOURCE_DIR = Path(os.environ.get("TD_SOURCE_DIR", Path(__file__).resolve().parent.parent))
GUESTS = SOURCE_DIR / "tests" / "guests"


# tools/run-tests' pytest-sanitized step sets TD_SANITIZED=1: the ASan+UBSan
# executable runs 2-10x slower (a 200 MiB serial flood: 5 s plain, 49-62 s
# sanitized), so the timing bounds of the files it runs are this much wider.
SLOWDOWN = 3 if os.environ.get("TD_SANITIZED") == "1" else 1


def driver_exe() -> str:
    exe = os.environ.get("TD_DRIVER_EXE") or shutil.which("nixos-test-driver")
    if not exe:
        raise RuntimeError("nixos-test-driver not found: set TD_DRIVER_EXE or run the tests through ctest")
    return exe


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"this test needs {', '.join(missing)} on PATH (install the Debian packages, see .ci/run)")


def gone(pid: int, wait: float = 10) -> bool:
    """True once process `pid` no longer exists, waiting up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


NOBODY = 65534


def unprivileged_driver(top: Path) -> tuple:
    """(argv prefix, environment) that run a copy of nixos-test-driver and its
    Python package, put in `top`, as uid/gid 65534 with no groups. CI runs as
    root, who may write anywhere, so the checks of permissions run this way.
    The build tree may be where uid 65534 cannot go (a clone under /root),
    hence the copy; `top` must be reachable by that user."""
    import test_driver
    require_tools("setpriv")
    exe = top / "nixos-test-driver"
    shutil.copy2(driver_exe(), exe)
    py = top / "py"
    shutil.copytree(Path(test_driver.__file__).parent, py / "test_driver")
    for path in [py, *py.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    env = dict(os.environ, PYTHONPATH=str(py), NO_COLOR="1")
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(exe)]
    return argv, env


_images: dict = {}


def guest_image(name: str) -> Path:
    """The cached image directory for `name` ("mini", "systemd" or "container"), built on first use."""
    if name not in _images:
        require_tools("systemd-nspawn", "vde_plug2tap") if name == "container" else require_tools("qemu-system-x86_64")
        result = subprocess.run([str(GUESTS / "build"), name], stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building the {name} guest image failed (tests/guests/build {name})")
        _images[name] = Path(result.stdout.strip().splitlines()[-1])
    return _images[name]


def start_script(image: str, name: str, out_dir: Path, node: int = 1, vlans=(), hosts=None, memory=None,
                 extra_args=()) -> str:
    """Writes run-<name>-vm (run-<name>-nspawn for the "container" image) for
    the image into out_dir and returns its path. extra_args go to
    tests/guests/start-script as they are (--initrd-backdoor, --efi)."""
    args = [str(GUESTS / "start-script"), str(guest_image(image)), name, str(out_dir), "--node", str(node)]
    if image == "container":
        args.append("--container")
    for v in vlans:
        args += ["--vlan", str(v)]
    for host, addr in (hosts or {}).items():
        args += ["--host", f"{host}={addr}"]
    if memory:
        args += ["--memory", str(memory)]
    args += list(extra_args)
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def fetch_through_forwarded_port(machine, guest_port: int, path: str) -> bytes:
    """Forwards a free port of 127.0.0.1 to guest_port with forward_port and
    fetches http://127.0.0.1:<port><path> through it."""
    import socket
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host_port = s.getsockname()[1]
    machine.forward_port(host_port, guest_port)
    return urllib.request.urlopen(f"http://127.0.0.1:{host_port}{path}", timeout=30).read()


class Bed:
    """A test's directories: tmp (TMPDIR for the driver), out, scripts."""

    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / "tmp"
        self.out = root / "out"
        self.scripts = root / "scripts"
        for d in (self.tmp, self.out, self.scripts):
            d.mkdir(parents=True, exist_ok=True)

    def script(self, image: str, name: str, **kw) -> str:
        return start_script(image, name, self.scripts, **kw)

    def machine(self, image: str, name: str = "machine", script_args=(), **kw):
        """A Machine (not started) on a start script for `image`, in this bed
        (script_args: more options of tests/guests/start-script)."""
        from test_driver.machine import Machine, NixStartScript
        script = self.script(image, name, extra_args=script_args)
        return Machine(out_dir=self.out, tmp_dir=self.tmp, start_command=NixStartScript(script), name=name, **kw)

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update({"TMPDIR": str(self.tmp), "ACCEL": "tcg", "NO_COLOR": "1"})
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
        env.update(extra)
        return env

    def run_driver(self, script_text: str, args=(), env=None, timeout=600, stdin=subprocess.DEVNULL):
        """Runs nixos-test-driver on script_text; returns CompletedProcess (text)."""
        test = self.root / "test.py"
        test.write_text(script_text)
        return subprocess.run([driver_exe(), *args, str(test)], env=env or self.env(), cwd=self.root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                              stdin=stdin)


@pytest.fixture
def bed(tmp_path):
    # Unix socket paths are short: keep the directories near the root.
    return Bed(tmp_path)


# The driver's children inherit our environment: force TCG (KVM does not
# work on these machines) and no display.
os.environ.setdefault("ACCEL", "tcg")
os.environ.pop("DISPLAY", None)
os.environ.pop("WAYLAND_DISPLAY", None)


# --- the sanitized run ----------------------------------------------------------
# These files drive the executable (nixos-test-driver through the CLI) against
# real guests. tools/run-tests runs them apart with the AddressSanitizer and
# UndefinedBehaviorSanitizer build's executable and module (build-sanitize/)
# and sets TD_SANITIZED_APART=1 for ctest's run, which then leaves them out.
SANITIZED_FILES = ("test_faults.py", "test_bad_input.py", "test_cli.py", "test_keep_going.py", "test_config.py")


def pytest_ignore_collect(collection_path, config):
    return os.environ.get("TD_SANITIZED_APART") == "1" and collection_path.name in SANITIZED_FILES


# --- skips: every one is named here with its reason, or the run fails ----------
# (ctest shows pytest's output only on failure, so a skip would pass unseen.)
# The run ends with the skip list; with TD_SKIP_REPORT=FILE it is also
# written there (tools/run-tests prints it after ctest).
EXPECTED_SKIPS: dict = {
    # test node id: why it may skip
    "tests/integration/test_pytest_example.py::test_cmake_install_then_import":
        "installs from a build tree: skipped only when the package under test is an installed one (not under ctest)",
}
_skipped: list = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def _named(nodeid: str, expected: dict):
    """The reason `expected` gives for nodeid; node ids depend on pytest's
    rootdir, so a key may name the test from further up or further down."""
    for key, reason in expected.items():
        if nodeid == key or key.endswith("/" + nodeid) or nodeid.endswith("/" + key):
            return reason
    return None


def skip_report(skipped, expected) -> tuple:
    """(lines describing the skips, whether any was not expected)."""
    unexpected = [(n, r) for n, r in skipped if _named(n, expected) is None]
    lines = [f"skipped tests: {len(skipped)} ({len(unexpected)} not named in tests/conftest.py EXPECTED_SKIPS)"]
    for nodeid, reason in skipped:
        named = _named(nodeid, expected)
        if named is not None:
            lines.append(f"  expected: {nodeid}: {named} (pytest said: {reason})")
        else:
            lines.append(f"  UNEXPECTED: {nodeid}: {reason}")
    return lines, bool(unexpected)


def pytest_sessionfinish(session, exitstatus):
    lines, failed = skip_report(_skipped, EXPECTED_SKIPS)
    print("\n" + "\n".join(lines))
    path = os.environ.get("TD_SKIP_REPORT")
    if path:
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    if failed and session.exitstatus == 0:
        session.exitstatus = 1
