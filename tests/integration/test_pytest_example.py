"""test_driver as a Python library: the pytest example runs and passes, a
`with Driver(...)` block leaves no QEMU behind, and the package works after
`cmake --install`."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, gone

import test_driver
from test_driver.driver import Driver

PACKAGE_PARENT = Path(test_driver.__file__).resolve().parent.parent


def test_pytest_example_passes(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_PARENT), ACCEL="tcg")
    r = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "--basetemp", str(tmp_path / "t"), str(SOURCE_DIR / "examples" / "test_with_pytest.py")],
                       env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout
    assert "5 passed" in r.stdout


def test_with_block_kills_qemu(bed, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(bed.tmp))
    script = bed.script("mini", "machine")
    with Driver([script], [], "", bed.out) as driver:
        m = driver.machines[0]
        m.start()  # QEMU runs; no need to wait for the guest
        pid = m.pid
        assert pid and not gone(pid, wait=0)
    assert gone(pid), "QEMU survived the with block"
    # Also when the block raises.
    with pytest.raises(RuntimeError):
        with Driver([script], [], "", bed.out) as driver:
            driver.machines[0].start()
            pid = driver.machines[0].pid
            raise RuntimeError("test failed")
    assert gone(pid), "QEMU survived the with block that raised"


def test_cmake_install_then_import(tmp_path):
    build_dir = PACKAGE_PARENT.parent
    if not (build_dir / "CMakeCache.txt").exists():
        pytest.skip("not running against a build tree")
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(build_dir), "--prefix", str(prefix)], check=True,
                   stdout=subprocess.DEVNULL, timeout=120)
    site = prefix / "lib" / "python3" / "dist-packages"
    for name in ("_core.pyi", "py.typed", "__init__.py", "machine/__init__.py", "machine/qmp.py"):
        assert (site / "test_driver" / name).is_file(), name
    # The subpackage is byte-compiled too.
    assert list((site / "test_driver" / "machine" / "__pycache__").glob("qmp.*.pyc"))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(site)}
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import test_driver, test_driver.machine, test_driver.machine.qmp, test_driver.driver;"
                        "print(test_driver.__file__); print(test_driver.machine.Machine.succeed.__doc__)"],
                       env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(site / "test_driver" / "__init__.py"))
    assert "Run each command" in r.stdout
