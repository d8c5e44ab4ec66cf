"""Machine methods against one real `mini` guest (busybox + bash + coreutils
initramfs with NixOS's backdoor), booted once for the module."""
import hashlib
import time

import pytest

from conftest import Bed
from test_driver import errors
from test_driver.machine import Machine


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    m = Bed(tmp_path_factory.mktemp("mini")).machine("mini")
    m.connect()
    yield m
    m.release()


def test_echo_output_is_exact(machine):
    assert machine.execute("echo hello") == (0, "hello\n")
    assert machine.succeed("echo hello") == "hello\n"


def test_exit_status_and_pipefail(machine):
    assert machine.execute("exit 3")[0] == 3
    # Without a timeout the command runs in the backdoor's bash itself, under
    # set -euo pipefail; with one, in `timeout N sh -c`, as on the reference.
    assert machine.execute("false | true", timeout=None)[0] == 1
    assert machine.execute("echo $undefined_variable", timeout=None)[0] != 0
    assert machine.execute("false | true")[0] == 0


def test_check_return_false_skips_the_status(machine):
    assert machine.execute("echo hi; exit 5", check_return=False) == (-1, "hi\n")
    assert machine.execute("echo next") == (0, "next\n")  # the shell stays in step


def test_seq_round_trips(machine):
    out = machine.succeed("seq 10000")
    assert out == "".join(f"{i}\n" for i in range(1, 10001))


def test_four_megabytes_of_output(machine):
    out = machine.succeed("head -c 3000000 /dev/urandom | base64 -w 76 | tee /tmp/big")
    assert len(out) > 4_000_000
    guest_sum = machine.succeed("sha256sum /tmp/big").split()[0]
    assert hashlib.sha256(out.encode()).hexdigest() == guest_sum


def test_sixty_four_megabytes_of_output_arrive_whole(machine):
    # QEMU's virtconsole drops what the driver does not drain in time; the
    # driver lost ~400 KB of this per run while it copied a growing buffer.
    out = machine.succeed("head -c 64M /dev/zero | tr '\\0' x", timeout=120)
    assert len(out) == 64 << 20
    assert out.count("x") == len(out)


def test_every_first_byte_survives_the_frame(machine):
    # The frame carries the output's first byte apart from the rest.
    for byte in [0, 1, 9, 10, 32, 34, 39, 92, 127, 128, 255]:
        out = machine.execute(f"printf '\\{byte:03o}rest'", timeout=None)[1]
        expected = (chr(byte) if byte < 128 else "\ufffd") + "rest"
        assert out == expected, byte
    assert machine.execute("true") == (0, "")


def test_invalid_utf8_and_nul_bytes_never_raise(machine):
    out = machine.succeed(r"printf 'a\xff\xfeb\000c\n'")
    assert out == "a\ufffd\ufffdb\x00c\n"


def test_guest_side_timeout(machine):
    start = time.monotonic()
    status, _ = machine.execute("sleep 30", timeout=2)
    assert status == 124
    assert time.monotonic() - start < 15


def test_succeed_and_fail_messages(machine):
    assert machine.succeed("echo a", "echo b") == "a\nb\n"
    with pytest.raises(errors.RequestedAssertionFailed, match=r"^command `exit 7` failed \(exit code 7\)$"):
        machine.succeed("exit 7")
    assert machine.fail("echo out; false") == "out\n"
    with pytest.raises(Exception, match=r"^command `true` unexpectedly succeeded$"):
        machine.fail("true")


def test_wait_until_succeeds_and_fails(machine):
    machine.succeed("rm -f /tmp/flag; (sleep 1; touch /tmp/flag) >/dev/null 2>&1 &")
    assert machine.wait_until_succeeds("test -e /tmp/flag && echo there", timeout=30) == "there\n"
    machine.succeed("(sleep 1; rm /tmp/flag) >/dev/null 2>&1 &")
    machine.wait_until_fails("test -e /tmp/flag", timeout=30)
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after [12]\.\d\d seconds \(timeout=2\)"):
        machine.wait_until_succeeds("false", timeout=2)
    with pytest.raises(errors.RequestedAssertionFailed, match=r"action timed out after \d+\.\d\d seconds \(timeout=2\)"):
        machine.wait_until_fails("true", timeout=2)


def test_monitor_reply_longer_than_10k(machine):
    reply = machine.send_monitor_command("help")
    assert len(reply) > 10_000
    assert "info" in reply and reply.endswith("(qemu) ")
    with pytest.raises(errors.Error, match="one line"):
        machine.send_monitor_command("info status\nquit")


def test_console_log_has_serial_lines(machine):
    machine.succeed("echo marker-on-serial > /dev/ttyS0")
    deadline = time.monotonic() + 10
    while "marker-on-serial" not in machine.get_console_log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "marker-on-serial" in machine.get_console_log()


def test_python_callbacks_run_before_commands_and_propagate(machine):
    # The callbacks of a machine run before each of its commands (and monitor
    # commands); an exception of theirs reaches the script and the command
    # is not run.
    calls = []
    before = machine.callbacks
    machine.callbacks = before + [lambda: calls.append("cb")]
    try:
        machine.succeed("true")
        machine.execute("true")
        machine.send_monitor_command("info status")
        assert calls == ["cb", "cb", "cb"]

        def refuse():
            raise ValueError("callback says no")

        machine.succeed("rm -f /tmp/cb-ran")
        machine.callbacks = machine.callbacks + [refuse]
        with pytest.raises(ValueError, match="callback says no"):
            machine.succeed("touch /tmp/cb-ran")
    finally:
        machine.callbacks = before
    machine.fail("test -e /tmp/cb-ran")


def test_unbalanced_quotes_fail_instead_of_hanging(machine):
    # Without a timeout the reference handed the text to bash as is, and bash
    # waited forever for the closing quote.
    status, _ = machine.execute("echo 'unclosed", timeout=None)
    assert status == 2
    assert machine.execute("echo ok # trailing comment", timeout=None) == (0, "ok\n")
    assert machine.succeed("cat <<EOF\nheredoc works\nEOF") == "heredoc works\n"
