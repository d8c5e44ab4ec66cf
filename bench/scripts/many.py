# Figure 7: N `mini` machines started with start_all() until all answer.
import sys
import time

sys.path.insert(0, os.environ["BENCH_LIB"])
import benchlib as B  # noqa: E402


def many():
    t = time.time()
    start_all()
    for m in machines:
        m.succeed("true")
    took = time.time() - t
    # VmHWM: this process's own peak (ru_maxrss would include the peak of
    # the process that exec'd the driver).
    with open("/proc/self/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024.0
    return {"many": took, "many_rss": rss}


B.figure(["many", "many_rss"], many)
for m in machines:
    m.crash()
B.record("done", 1)
