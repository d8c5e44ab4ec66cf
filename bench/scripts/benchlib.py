"""Helpers for the benchmark test scripts (bench/scripts/*.py).

A benchmark script runs inside a driver (the reference or ours) like any test
script. It reads its parameters from $BENCH_PARAMS (JSON) and writes its
figures to $BENCH_OUT (JSON, rewritten after every figure so a crash or a
timeout keeps what was measured). A figure's value is a number, or
{"na": "missing"} when the driver lacks a method it needs, or
{"error": "..."} when it raised.
"""
import glob
import json
import os
import time
import traceback

PARAMS = json.loads(os.environ.get("BENCH_PARAMS", "{}"))
_OUT = os.environ.get("BENCH_OUT")
results = {}


def save():
    if not _OUT:
        return
    tmp = _OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(tmp, _OUT)


def record(key, value):
    results[key] = value
    save()


def missing(obj, *methods):
    return [m for m in methods if not hasattr(obj, m)]


def figure(keys, fn, needs=(), obj=None):
    """Run fn() -> {key: number}; on a missing method or an exception, mark
    every key in keys accordingly. Never raises."""
    if obj is not None:
        lacking = missing(obj, *needs)
        if lacking:
            for k in keys:
                record(k, {"na": "missing " + ",".join(lacking)})
            return
    try:
        values = fn()
    except BaseException as e:  # noqa: B902 - a benchmark never stops the run
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = "".join(traceback.format_exception_only(type(e), e)).strip()
        for k in keys:
            if k not in results:
                record(k, {"error": msg[:300]})
        return
    for k, v in values.items():
        record(k, v)


def shared_dir():
    """The host side of the guests' /tmp/shared."""
    tmp = os.environ.get("TMPDIR", "/tmp")
    d = os.path.join(tmp, "shared-xchg")
    if os.path.isdir(d):
        return d
    found = glob.glob(os.path.join(tmp, "shared*"))
    if not found:
        raise RuntimeError(f"no shared directory under {tmp}")
    return found[0]


def wait_for_host_file(path, timeout):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def reaction_trials(machine, method, delays, arm, wait, tag):
    """For each delay D: arm(D, mark_name, i) makes the guest turn the
    condition true D seconds later, writing /tmp/shared/<mark_name> (host
    mtime = the moment the condition became true) just before;
    wait(i) calls the wait. Returns {tag_mean, tag_max} in seconds."""
    shared = shared_dir()
    reactions = []
    for i, d in enumerate(delays):
        mark = f"bench-mark-{tag}-{i}"
        arm(d, mark, i)
        wait(i)
        t_ret = time.time()
        path = os.path.join(shared, mark)
        wait_for_host_file(path, 5)
        reactions.append(t_ret - os.stat(path).st_mtime)
    return {f"{tag}_mean": sum(reactions) / len(reactions), f"{tag}_max": max(reactions),
            f"{tag}_all": reactions}


def systemd_suite(machine, subtest):
    """Figure 8's systemd-guest test: an ordinary test script's body."""
    machine.start()
    machine.wait_for_unit("multi-user.target")
    with subtest("a few commands"):
        assert machine.succeed("hostname").strip() == "machine"
        machine.succeed("systemctl is-active backdoor.service")
        machine.succeed("test -d /tmp/shared")
        status, out = machine.execute("systemctl is-active no-such-unit.service")
        assert status != 0, out
        machine.wait_until_succeeds("test -e /run/systemd/system")
