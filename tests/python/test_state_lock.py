"""Issue 16: a machine's state directory is locked for the machine's life."""
import os
import subprocess
import sys

from test_driver import errors
from test_driver.machine import Machine, NixStartScript

import pytest

HOLD = """
import sys, time
from test_driver.machine import Machine, NixStartScript
m = Machine(out_dir=sys.argv[1], tmp_dir=sys.argv[1], start_command=NixStartScript("/x/run-a-vm"), name="a")
print("locked", flush=True)
sys.stdin.read()
"""


def test_another_process_holding_the_state_directory_is_named(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert holder.stdout.readline() == "locked\n"
        (tmp_path / "vm-state-a" / "disk").write_text("the holder's")
        with pytest.raises(errors.Error, match=r"the VM state directory .*/vm-state-a is in use by another test "
                                               r"driver \(pid %d\)" % holder.pid):
            Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=NixStartScript("/x/run-a-vm"), name="a")
        assert (tmp_path / "vm-state-a" / "disk").read_text() == "the holder's"
    finally:
        holder.stdin.close()
        holder.wait(10)
    # Released with the holder: now it is ours, and wiped.
    m = Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=NixStartScript("/x/run-a-vm"), name="a")
    assert not (m.state_dir / "disk").exists()
    assert (m.state_dir / ".driver-lock").read_text() == f"{os.getpid()}\n"


def test_machines_of_one_process_share_the_lock(tmp_path):
    cmd = NixStartScript("/x/run-a-vm")
    a = Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=cmd, name="a")
    b = Machine(out_dir=tmp_path, tmp_dir=tmp_path, start_command=cmd, name="a", keep_vm_state=True)
    del a
    probe = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, env=os.environ, timeout=30)
    assert "in use by another test driver (pid %d)" % os.getpid() in probe.stderr, "the lock went with a"
    del b
