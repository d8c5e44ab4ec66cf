# Benchmark session on one `mini` guest: figures 2 (wait_for_file,
# wait_until_succeeds), 3 (command round trip), 4 (output throughput and
# copies), 5 (serial log) and 6 (the driver's own CPU time).
import hashlib
import sys
import time

sys.path.insert(0, os.environ["BENCH_LIB"])
import benchlib as B  # noqa: E402

P = B.PARAMS
figs = set(P["figures"])

t0 = time.time()
machine.start()
machine.succeed("true")
B.record("boot", time.time() - t0)


# -- 2: reaction time of waits -------------------------------------------
def arm_file(d, mark, i):
    machine.succeed(f"(sleep {d}; : > /tmp/shared/{mark}; : > /tmp/bench-wff-{i}) >/dev/null 2>&1 &")


def arm_until(d, mark, i):
    machine.succeed(f"(sleep {d}; : > /tmp/shared/{mark}; : > /tmp/bench-wus-{i}) >/dev/null 2>&1 &")


if "reaction" in figs:
    B.figure(["wff_mean", "wff_max"],
             lambda: B.reaction_trials(machine, "wait_for_file", P["delays"], arm_file,
                                       lambda i: machine.wait_for_file(f"/tmp/bench-wff-{i}"), "wff"),
             needs=["wait_for_file"], obj=machine)
    B.figure(["wus_mean", "wus_max"],
             lambda: B.reaction_trials(machine, "wait_until_succeeds", P["delays"], arm_until,
                                       lambda i: machine.wait_until_succeeds(f"test -e /tmp/bench-wus-{i}"), "wus"),
             needs=["wait_until_succeeds"], obj=machine)


# -- 3: command round trip -------------------------------------------------
def round_trip(fn):
    n = P["commands"]
    t = time.time()
    for _ in range(n):
        fn()
    return (time.time() - t) / n


if "roundtrip" in figs:
    B.figure(["rt_succeed"], lambda: {"rt_succeed": round_trip(lambda: machine.succeed("true"))})
    B.figure(["rt_execute"], lambda: {"rt_execute": round_trip(lambda: machine.execute("true", timeout=None))})
    # execute()'s default timeout (900 s): the reference starts `timeout` and `sh` per command.
    B.figure(["rt_execute_default"], lambda: {"rt_execute_default": round_trip(lambda: machine.execute("true"))})


# -- 4: output throughput and copies --------------------------------------
def output(label, n):
    t = time.time()
    out = machine.succeed(f"head -c {n} /dev/zero | tr '\\0' x")
    took = time.time() - t
    if out.count("x") != len(out):
        raise RuntimeError(f"output of {n} bytes came back with other bytes than 'x'")
    # Lost output is a figure of its own (the virtconsole drops what the
    # driver does not drain in time), not a crash.
    return {f"out_{label}": took, f"out_{label}_lost": n - len(out)}


def copy_in():
    n = P["copy_in_bytes"]
    src = os.path.join(os.environ["TMPDIR"], "bench-copy-in.bin")
    data = os.urandom(n)
    with open(src, "wb") as f:
        f.write(data)
    t = time.time()
    machine.copy_from_host_via_shell(src, "/tmp/bench-copy/in.bin")
    took = time.time() - t
    got = machine.succeed("sha256sum /tmp/bench-copy/in.bin").split()[0]
    if got != hashlib.sha256(data).hexdigest():
        raise RuntimeError("copy_from_host_via_shell: the guest's copy differs")
    machine.succeed("rm -f /tmp/bench-copy/in.bin")
    return took


def copy_out():
    n = P["copy_bytes"]
    machine.succeed(f"head -c {n} /dev/urandom > /tmp/bench-out.bin")
    want = machine.succeed("sha256sum /tmp/bench-out.bin").split()[0]
    t = time.time()
    machine.copy_from_vm("/tmp/bench-out.bin", "bench-copy")
    took = time.time() - t
    out_dir = os.environ["BENCH_OUTDIR"]  # the driver's -o
    with open(os.path.join(out_dir, "bench-copy", "bench-out.bin"), "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != want:
            raise RuntimeError("copy_from_vm: the host's copy differs")
    machine.succeed("rm -f /tmp/bench-out.bin")
    return took


if "output" in figs:
    for label, n in P["outputs"]:
        B.figure([f"out_{label}", f"out_{label}_lost"], lambda n=n, label=label: output(label, n))
    if "copy_in" in figs:
        B.figure(["copy_in"], lambda: {"copy_in": copy_in()}, needs=["copy_from_host_via_shell"], obj=machine)
    B.figure(["copy_out"], lambda: {"copy_out": copy_out()}, needs=["copy_from_vm"], obj=machine)


# -- 5: serial log throughput ---------------------------------------------
# The harness watches the driver's stderr (both drivers print every serial
# line there as it arrives) and creates $BENCH_SERIAL_FLAG when it sees the
# end marker; it computes the figure from serial_t0 and that moment.
def serial():
    n = P["serial_lines"]
    t = time.time()
    B.record("serial_t0", t)
    machine.succeed(f"echo BENCH-SERIAL-BEGIN > /dev/ttyS0; seq {n} > /dev/ttyS0; echo BENCH-SERIAL-END > /dev/ttyS0")
    B.wait_for_host_file(os.environ["BENCH_SERIAL_FLAG"], P.get("serial_timeout", 300))
    # The reference writes queued serial lines to the XML log on its next
    # log call: make one.
    machine.log("bench: serial lines seen")
    return {"serial_cmd": time.time() - t}


if "serial" in figs:
    B.figure(["serial_cmd"], serial)


# -- 6: the driver's own CPU time -----------------------------------------
def cpu():
    n, waits = P["cpu_commands"], P["cpu_waits"]
    per_block = n // waits  # commands per block, one of them arms the wait
    c0, t0 = os.times(), time.time()
    for k in range(waits):
        for j in range(per_block - 1):
            machine.succeed(f"echo {k}.{j}")
        machine.succeed(f"(sleep 0.3; : > /tmp/bench-cpu-{k}) >/dev/null 2>&1 &")
        machine.wait_until_succeeds(f"test -e /tmp/bench-cpu-{k}")
    c1, t1 = os.times(), time.time()
    return {"cpu": (c1.user - c0.user) + (c1.system - c0.system),
            "cpu_user": c1.user - c0.user, "cpu_sys": c1.system - c0.system, "cpu_wall": t1 - t0}


if "cpu" in figs:
    B.figure(["cpu"], cpu)

machine.crash()
B.record("done", 1)
