"""The symbol list for linting test scripts (the reference's
generate_driver_symbols), and pyflakes linting with it, as NixOS does:
PYFLAKES_BUILTINS="<machine names>,$(< driver-symbols)" pyflakes script.py
"""
import os
import subprocess

from conftest import driver_exe

import test_driver

# Upstream's (nixpkgs 2026) in its order, then the reference's Machine.
EXPECTED = ("start_all,test_script,machines,machines_qemu,machines_nspawn,vlans,driver,log,os,create_machine,"
            "subtest,run_tests,join_all,retry,serial_stdout_off,serial_stdout_on,polling_condition,"
            "BaseMachine,QemuMachine,NspawnMachine,t,debug,dump_machine_ssh,"
            "Machine")

GOOD = """
start_all()
server.wait_until_succeeds("true")
with subtest("answers"):
    assert client.succeed("echo hi") == "hi\\n"
@polling_condition(seconds_interval=1)
def up():
    server.succeed("true")
retry(lambda last: True, timeout=5)
log.info(str([m.name for m in machines]) + str(os.getpid()))
"""

BAD = """
start_all()
server.succeed("true")
srever.succeed("true")
"""


def test_cli_writes_driver_symbols(tmp_path):
    r = subprocess.run([driver_exe(), "--generate-driver-symbols"], cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "driver-symbols").read_text() == EXPECTED


def test_python_function_writes_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    names = test_driver.generate_driver_symbols()
    assert ",".join(names) == EXPECTED
    assert (tmp_path / "driver-symbols").read_text() == EXPECTED


def pyflakes(tmp_path, script: str, builtins: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(script)
    return subprocess.run(["/usr/bin/python3", "-m", "pyflakes", str(path)],
                          env={**os.environ, "PYFLAKES_BUILTINS": builtins},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def test_pyflakes_with_the_symbols(tmp_path):
    builtins = "server,client," + EXPECTED
    r = pyflakes(tmp_path, GOOD, builtins)
    assert r.returncode == 0, r.stdout + r.stderr
    r = pyflakes(tmp_path, BAD, builtins)
    assert r.returncode == 1
    assert "script.py:4:1: undefined name 'srever'" in r.stdout
    assert "'server'" not in r.stdout
    # Without the list, every driver name is undefined.
    r = pyflakes(tmp_path, GOOD, "")
    assert "undefined name 'start_all'" in r.stdout and "undefined name 'polling_condition'" in r.stdout
