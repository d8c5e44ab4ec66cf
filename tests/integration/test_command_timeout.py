"""execute(cmd, timeout=N) in a real `mini` guest: the command is killed
after N seconds with status 124, as under the reference's `timeout N sh -c`,
by a watchdog in the backdoor shell (shell_protocol.h's
guest_timeout_command) that starts no program; a command that ends first is
unaffected and leaves no process behind."""
import time

import pytest

from conftest import Bed

# The bash processes of the guest other than the backdoor shell ($$) and the
# children it has while this runs (this command's own subshells), found with
# builtins only.
OTHER_BASH_PROCESSES = (
    'for d in /proc/[0-9]*; do '
    'c=; read -r c <"$d/comm" 2>/dev/null || continue; [[ $c == bash ]] || continue; '
    'p=${d#/proc/}; s=; read -r s <"$d/stat" 2>/dev/null || continue; s=${s##*) }; read -r _ pp _ <<<"$s"; '
    '(( p == $$ || pp == $$ )) || echo "$p"; done'
)


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    m = Bed(tmp_path_factory.mktemp("timeout")).machine("mini")
    m.connect()
    yield m
    m.release()


def other_bash_processes(machine) -> set:
    return set(machine.succeed(OTHER_BASH_PROCESSES, timeout=None).split())


def settles_to(machine, expected: set) -> set:
    """The other bash processes, once they are `expected` or 10 s have
    passed: a killed watchdog takes a moment to go."""
    deadline = time.monotonic() + 10
    while True:
        now = other_bash_processes(machine)
        if now == expected or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def has_process_named(machine, name: str) -> bool:
    out = machine.succeed(
        f'for d in /proc/[0-9]*; do c=; read -r -d "" c <"$d/cmdline" 2>/dev/null || :; [[ $c == {name} ]] && echo "$d"; '
        'done; true', timeout=None)
    return out != ""


def test_a_command_past_its_timeout_is_killed_with_status_124(machine):
    machine.succeed("(exec -a td-marker-check sleep 30) >/dev/null 2>&1 &")
    assert has_process_named(machine, "td-marker-check")  # the check below sees such a process
    before = other_bash_processes(machine)
    status, out = machine.execute("(exec -a td-timed-child sleep 60); echo never", timeout=2)
    assert (status, out) == (124, "")
    # The command's process group went with it: its child too.
    assert not has_process_named(machine, "td-timed-child")
    assert settles_to(machine, before) == before
    assert machine.succeed("echo next") == "next\n"


def test_a_command_that_ends_in_time_is_unaffected_and_leaves_no_process(machine):
    before = other_bash_processes(machine)
    assert machine.execute("echo hi; echo to-stderr >&2; exit 3", timeout=30) == (3, "hi\n")
    assert machine.execute("echo $((6 * 7))") == (0, "42\n")  # the default timeout, 900 s
    # The watchdogs were killed and the commands' subshells are gone; a
    # watchdog still sleeping would be an orphan bash here.
    assert settles_to(machine, before) == before
