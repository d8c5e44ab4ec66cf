# Benchmark session on one `systemd` guest: figure 2 for wait_for_open_port
# (netcat-openbsd's `nc -z`, which the mini guest's busybox lacks) and
# wait_for_unit.
import sys
import time

sys.path.insert(0, os.environ["BENCH_LIB"])
import benchlib as B  # noqa: E402

P = B.PARAMS
t0 = time.time()
machine.start()
machine.succeed("true")
B.record("boot_systemd", time.time() - t0)
if P.get("suite"):  # smoke mode: figure 8's systemd script in the same boot
    B.figure(["suite_systemd"], lambda: (B.systemd_suite(machine, subtest), {"suite_systemd": "ok"})[1],
             needs=["wait_for_unit"], obj=machine)
delays = P["delays"]

# A listener that binds D seconds after it started and writes the mark
# right after listen(), so the mark's mtime is the moment the port opened.
LISTENER = ("import socket,sys,time;d,p,m=float(sys.argv[1]),int(sys.argv[2]),sys.argv[3];"
            "time.sleep(d);s=socket.create_server(('',p),family=socket.AF_INET6,dualstack_ipv6=True);"
            "open('/tmp/shared/'+m,'w').close();time.sleep(120)")


def arm_port(d, mark, i):
    machine.succeed(f"(exec python3 -c \"{LISTENER}\" {d} {7000 + i} {mark}) >/dev/null 2>&1 &")


B.figure(["wfp_mean", "wfp_max"],
         lambda: B.reaction_trials(machine, "wait_for_open_port", delays, arm_port,
                                   lambda i: machine.wait_for_open_port(7000 + i), "wfp"),
         needs=["wait_for_open_port"], obj=machine)


# Units benchI: ExecStartPre sleeps D, ExecStartPost writes the mark; the
# unit turns active when ExecStartPost has exited (a few ms after the mark).
def units():
    for i, d in enumerate(delays):
        machine.succeed(
            f"printf '%s\\n' '[Service]' 'ExecStartPre=/bin/sleep {d}' 'ExecStart=/bin/sleep infinity' "
            f"'ExecStartPost=/bin/touch /tmp/shared/bench-mark-wfu-{i}' > /run/systemd/system/bench{i}.service")
    machine.succeed("systemctl daemon-reload")
    return B.reaction_trials(machine, "wait_for_unit", delays,
                             lambda d, mark, i: machine.succeed(f"systemctl start --no-block bench{i}.service"),
                             lambda i: machine.wait_for_unit(f"bench{i}.service"), "wfu")


B.figure(["wfu_mean", "wfu_max"], units, needs=["wait_for_unit"], obj=machine)

machine.crash()
B.record("done", 1)
