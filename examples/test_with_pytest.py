"""Drive a VM from pytest, using test_driver as a library.

A module-scoped fixture boots one `mini` guest (the image and start script
come from tests/guests; on NixOS you would pass the `run-<name>-vm` script
of a built VM instead) and every test talks to it. Leaving the `with
Driver(...)` block kills QEMU.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q examples/test_with_pytest.py
"""
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from test_driver.driver import Driver
from test_driver.errors import RequestedAssertionFailed
from test_driver.machine import Machine

GUESTS = Path(__file__).resolve().parent.parent / "tests" / "guests"


def mini_start_script(out_dir: Path) -> str:
    """Builds (or finds in the cache) the mini image; writes run-machine-vm."""
    build = subprocess.run([str(GUESTS / "build"), "mini"], check=True, stdout=subprocess.PIPE, text=True)
    image = build.stdout.strip().splitlines()[-1]
    made = subprocess.run([str(GUESTS / "start-script"), image, "machine", str(out_dir)], check=True,
                          stdout=subprocess.PIPE, text=True)
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    root = tmp_path_factory.mktemp("vm")
    script = mini_start_script(root)
    # The driver keeps state directories and sockets under $TMPDIR.
    old_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(root)
    try:
        with Driver([script], [], "", root) as driver:
            m = driver.machines[0]
            m.start()
            m.connect()  # waits for the guest's root shell
            yield m
    finally:
        if old_tmpdir is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old_tmpdir


def test_kernel_is_linux(machine: Machine) -> None:
    assert machine.succeed("uname -s") == "Linux\n"


def test_exit_status_and_output(machine: Machine) -> None:
    status, out = machine.execute("echo out; exit 3")
    assert (status, out) == (3, "out\n")


def test_state_persists_between_tests(machine: Machine) -> None:
    machine.succeed("echo 42 > /tmp/answer")
    assert machine.succeed("cat /tmp/answer").strip() == "42"


def test_failing_command_raises(machine: Machine) -> None:
    with pytest.raises(RequestedAssertionFailed, match="exit code 1"):
        machine.succeed("false")
    machine.fail("false")


def test_wait_until_succeeds(machine: Machine) -> None:
    machine.succeed("(sleep 1; touch /tmp/ready) >/dev/null 2>&1 &")
    machine.wait_until_succeeds("test -e /tmp/ready", timeout=30)
