# Benchmark session on one `x11` guest: figure 10, the reaction of
# wait_for_text. An xterm shows a word D seconds after the command that
# prints it was typed; the same command then writes the mark, so the mark's
# mtime is the moment the word was on the screen (xterm draws within
# milliseconds). The typed line holds the word split in two (`cha` `rlie`),
# so only the printed line matches.
import os
import sys
import time

sys.path.insert(0, os.environ["BENCH_LIB"])
import benchlib as B  # noqa: E402

P = B.PARAMS
t0 = time.time()
machine.start()
machine.wait_for_x()
B.record("boot_x11", time.time() - t0)
machine.succeed("xterm -T bench-term >/dev/null 2>&1 &")
machine.wait_for_window("bench-term")
machine.wait_until_succeeds("xwininfo -root -tree | grep -q bench-term")
time.sleep(3)  # the xterm mapped and focused: keys are not lost


def screen_text():
    t = time.time()
    machine.get_screen_text()
    return {"screen_text": time.time() - t}


B.figure(["screen_text"], screen_text, needs=["get_screen_text"], obj=machine)


WORDS = ["arrived", "charlie", "foxtrot", "granite", "orchard"]


def arm(d, mark, i):
    w = WORDS[i % len(WORDS)]
    machine.send_chars(f"clear; sleep {d}; printf '%s%s\\n' {w[:3]} {w[3:]}; touch /tmp/shared/{mark}\n")


B.figure(["wft_mean", "wft_max"],
         lambda: B.reaction_trials(machine, "wait_for_text", P["delays"], arm,
                                   lambda i: machine.wait_for_text(WORDS[i % len(WORDS)]), "wft"),
         needs=["wait_for_text"], obj=machine)

machine.crash()
B.record("done", 1)
