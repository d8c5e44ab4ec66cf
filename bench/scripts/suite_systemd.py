# Figure 8's systemd-guest script: an ordinary test (benchlib.systemd_suite),
# timed as a whole by the harness. Without wait_for_unit the driver cannot
# run it (n/a).
import sys

sys.path.insert(0, os.environ["BENCH_LIB"])
import benchlib as B  # noqa: E402

if B.missing(machine, "wait_for_unit"):
    B.record("suite_systemd", {"na": "missing wait_for_unit"})
else:
    B.systemd_suite(machine, subtest)
    machine.shutdown()
    B.record("suite_systemd", "ok")
