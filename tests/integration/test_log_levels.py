"""--log-level / $logLevel: the terminal shows lines at or above the level,
warnings as "??? Warning (Category): …", errors as "!!! …"; the XML log keeps
every line, with a level attribute."""
import xml.etree.ElementTree as ET

SCRIPT = """
log.debug("a debug line")
log.info("an info line")
log.warning("plain warning")
log.warning("old API", {"category": "Deprecation"})
log.error("an error line")
with subtest("broken"):
    raise ValueError("nope")
"""


def test_default_level_is_info_and_formats(bed):
    log = bed.root / "log.xml"
    r = bed.run_driver(SCRIPT, env=bed.env(LOGFILE=str(log)))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert "a debug line" not in r.stderr
    assert "an info line" in lines
    assert "??? Warning: plain warning" in lines
    assert "??? Warning (Deprecation): old API" in lines
    assert "!!! an error line" in lines
    assert '!!! Test "broken" failed with error: "nope"' in lines
    assert "!!! test script failed: nope" in lines
    assert "run the VM test script" in lines
    levels = {l.text: l.get("level") for l in ET.parse(log).getroot().iter("line")}
    assert levels["a debug line"] == "debug"  # the XML log keeps everything
    assert levels["an info line"] is None
    assert levels["plain warning"] == "warning"
    assert levels["an error line"] == "error"
    assert any(l.get("category") == "Deprecation" for l in ET.parse(log).getroot().iter("line"))


def test_warning_level_hides_info_and_machine_chatter(bed):
    script = bed.script("mini", "machine")
    r = bed.run_driver("machine.succeed('true')\n" + SCRIPT,
                       args=["--log-level", "warning", "--start-scripts", script, "--"])
    assert r.returncode == 1
    assert "??? Warning: plain warning" in r.stderr
    assert "!!! an error line" in r.stderr and '!!! Test "broken" failed' in r.stderr
    for hidden in ("an info line", "a debug line", "must succeed: true", "machine # ", "run the VM test script",
                   "kill machine (pid "):
        assert hidden not in r.stderr, hidden


def test_environment_and_debug_level(bed):
    r = bed.run_driver(SCRIPT, env=bed.env(logLevel="debug"))
    assert "a debug line" in r.stderr.splitlines()
    r = bed.run_driver(SCRIPT, args=["--log-level", "ERROR"], env=bed.env(logLevel="debug"))  # the flag wins
    assert "a debug line" not in r.stderr and "??? Warning" not in r.stderr
    assert "!!! an error line" in r.stderr


def test_invalid_level_is_a_usage_error(bed):
    r = bed.run_driver("pass\n", args=["--log-level", "loud"])
    assert r.returncode == 2
    assert "--log-level" in r.stderr and "'loud'" in r.stderr
    r = bed.run_driver("pass\n", env=bed.env(logLevel="verbose"))
    assert r.returncode == 2 and "$logLevel" in r.stderr


def test_level_from_a_script(bed):
    r = bed.run_driver("assert log.level == 'info'\nlog.level = 'debug'\nlog.debug('now visible')\n"
                       "try:\n    log.level = 'loud'\nexcept ValueError as e:\n    print('rejected:', e)\n")
    assert r.returncode == 0, r.stderr
    assert "now visible" in r.stderr
    assert "rejected: invalid log level 'loud'" in r.stdout
