"""--keep-going: a failing top-level subtest is recorded and the script goes
on with what follows it; the run fails at the end, listing every failed
subtest with its error (terminal, JUnit). A failure outside any subtest, a
timeout or an interruption still ends the script; without the flag the first
failure does, as before."""
import xml.etree.ElementTree as ET

SCRIPT = """
with subtest("first fails"):
    assert 1 == 2, "one is not two"
    log.info("never here")
with subtest("outer"):
    with subtest("inner fails"):
        raise RuntimeError("deep down")
    log.info("not after the inner failure either")
with subtest("passes"):
    log.info("the third subtest ran")
log.info("the script's end")
"""


def junit_cases(path):
    return {c.get("name"): c for c in ET.parse(path).getroot().iter("testcase")}


def test_every_failed_subtest_is_listed_and_the_run_fails(bed):
    r = bed.run_driver(SCRIPT, args=["--keep-going", "--junit-xml", str(bed.root / "j.xml")])
    assert r.returncode == 1, r.stderr
    assert "the third subtest ran" in r.stderr and "the script's end" in r.stderr
    assert "never here" not in r.stderr and "not after the inner failure" not in r.stderr
    assert "!!! 2 subtests failed: first fails, outer" in r.stderr
    assert '!!!   "first fails": AssertionError: one is not two' in r.stderr
    assert '!!!   "outer": RuntimeError: deep down' in r.stderr
    assert "test script failed" not in r.stderr
    cases = junit_cases(bed.root / "j.xml")
    assert cases["first fails"].find("failure").get("message") == "one is not two"
    assert cases["outer / inner fails"].find("failure").get("message") == "deep down"
    assert cases["outer"].find("failure") is not None
    assert cases["passes"].find("failure") is None
    assert "main" not in cases


def test_without_the_flag_the_first_failure_ends_the_script(bed):
    r = bed.run_driver(SCRIPT, args=["--junit-xml", str(bed.root / "j.xml")])
    assert r.returncode == 1
    assert "the third subtest ran" not in r.stderr and "subtests failed" not in r.stderr
    assert "!!! test script failed: one is not two" in r.stderr
    assert list(junit_cases(bed.root / "j.xml")) == ["first fails"]


def test_a_failure_outside_subtests_still_ends_the_script(bed):
    r = bed.run_driver("with subtest('a'):\n    assert False, 'in a'\nraise RuntimeError('outside')\nlog.info('after')\n",
                       args=["--keep-going"])
    assert r.returncode == 1
    assert "!!! test script failed: outside" in r.stderr and "after" not in r.stderr.split("outside")[-1]
    assert "!!! 1 subtest failed: a" in r.stderr


def test_a_timeout_is_not_kept_going_past(bed):
    r = bed.run_driver("import time\nwith subtest('slow'):\n    time.sleep(30)\nwith subtest('next'):\n    log.info('next ran')\n",
                       args=["--keep-going", "--global-timeout", "1"])
    assert r.returncode == 1
    assert "global timeout of 1 seconds reached" in r.stderr and "next ran" not in r.stderr


def test_all_passing_exits_0(bed):
    r = bed.run_driver("with subtest('a'):\n    pass\nwith subtest('b'):\n    pass\n", args=["--keep-going"])
    assert r.returncode == 0, r.stderr
    assert "failed" not in r.stderr
