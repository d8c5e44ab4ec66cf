# Figure 9: snapshots. Boot to first command; with save_snapshot (ours):
# the save's time and file size, and restore_snapshot to first command.
# The reference has no snapshots (n/a); its figure is its boot.
import os
import sys
import time

sys.path.insert(0, os.environ["BENCH_LIB"])
import benchlib as B  # noqa: E402

tag = B.PARAMS.get("tag", "mini")


def boot():
    tic = time.monotonic()
    machine.start()
    machine.succeed("true")
    return {f"snap_boot_{tag}": time.monotonic() - tic, f"snap_first_{tag}": time.monotonic() - tic}


B.figure([f"snap_boot_{tag}"], boot)
if B.missing(machine, "save_snapshot", "restore_snapshot"):
    for k in (f"snap_save_{tag}", f"snap_size_{tag}"):
        B.record(k, {"na": "missing save_snapshot"})
else:
    def save_and_restore():
        tic = time.monotonic()
        machine.save_snapshot("bench")
        save = time.monotonic() - tic
        size = os.path.getsize(os.path.join(str(machine.state_dir), "snapshots", "bench.state")) / 1e6
        machine.succeed("echo changed > /tmp/bench-changed")
        restores = []
        for _ in range(int(B.PARAMS.get("restores", 3))):
            tic = time.monotonic()
            machine.restore_snapshot("bench")
            machine.succeed("true")
            restores.append(time.monotonic() - tic)
        machine.fail("test -e /tmp/bench-changed")
        restores.sort()
        return {f"snap_save_{tag}": save, f"snap_size_{tag}": size,
                f"snap_first_{tag}": restores[len(restores) // 2]}

    B.figure([f"snap_save_{tag}", f"snap_size_{tag}", f"snap_first_{tag}"], save_and_restore)
machine.crash()
B.record("done", True)
