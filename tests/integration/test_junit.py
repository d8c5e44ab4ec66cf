"""--junit-xml: the JUnit report of a run, parsed back and checked against
the structure of the common JUnit schema (the one Jenkins and GitLab read):
subtests (nested ones too) as test cases with their times, failures with
their messages, a `main` case, and a report written also when the run fails,
times out or is interrupted with SIGTERM."""
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

from conftest import driver_exe

# The JUnit structure CI tools read (after Jenkins' junit-10.xsd): testcase
# children in any order, failure/error with an optional message and type.
JUNIT_XSD = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:complexType name="problem" mixed="true">
    <xs:attribute name="message" type="xs:string"/>
    <xs:attribute name="type" type="xs:string"/>
  </xs:complexType>
  <xs:element name="testcase">
    <xs:complexType>
      <xs:choice minOccurs="0" maxOccurs="unbounded">
        <xs:element name="skipped" type="problem"/>
        <xs:element name="error" type="problem"/>
        <xs:element name="failure" type="problem"/>
        <xs:element name="system-out" type="xs:string"/>
        <xs:element name="system-err" type="xs:string"/>
      </xs:choice>
      <xs:attribute name="name" type="xs:string" use="required"/>
      <xs:attribute name="classname" type="xs:string" use="required"/>
      <xs:attribute name="time" type="xs:decimal" use="required"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuite">
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="testcase" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string" use="required"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal" use="required"/>
      <xs:attribute name="timestamp" type="xs:dateTime" use="required"/>
      <xs:attribute name="hostname" type="xs:string" use="required"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence>
        <xs:element ref="testsuite" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def parse_junit(path):
    """Parses the report, checks its structure and counts; returns {name: testcase element}."""
    text = path.read_bytes()
    from lxml import etree  # Debian's python3-lxml (tools/install-deps): a real schema check
    schema = etree.XMLSchema(etree.fromstring(JUNIT_XSD.encode()))
    doc = etree.fromstring(text)
    assert schema.validate(doc), schema.error_log
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    suites = list(root)
    assert [s.tag for s in suites] == ["testsuite"]
    suite = suites[0]
    for attr in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname"):
        assert suite.get(attr) is not None, attr
    cases = list(suite)
    assert all(c.tag == "testcase" for c in cases)
    for c in cases:
        assert c.get("name") and c.get("classname") and float(c.get("time")) >= 0
        assert {child.tag for child in c} <= {"failure", "error", "skipped", "system-out", "system-err"}
    assert int(suite.get("tests")) == len(cases) == int(root.get("tests"))
    assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
    assert int(suite.get("errors")) == sum(c.find("error") is not None for c in cases)
    names = [c.get("name") for c in cases]
    return {n: c for n, c in zip(names, cases)}, names


def test_subtests_nested_and_failing(bed):
    (bed.out / "reports").mkdir()
    r = bed.run_driver(
        """
import time
with subtest("first"):
    time.sleep(0.3)
    with subtest("nested"):
        log.info("inside the nested subtest")
        time.sleep(0.2)
with subtest("broken"):
    assert 1 + 1 == 3, "arithmetic is broken"
with subtest("never reached"):
    pass
""",
        args=["-o", str(bed.out), "--junit-xml", "reports/junit.xml"],  # relative to -o
    )
    assert r.returncode == 1, r.stderr
    assert '!!! Test "broken" failed with error: "arithmetic is broken"' in r.stderr
    cases, names = parse_junit(bed.out / "reports" / "junit.xml")
    assert names == ["first", "first / nested", "broken"]  # no main: the failure is the subtest's
    assert 0.5 <= float(cases["first"].get("time")) < 5
    assert 0.2 <= float(cases["first / nested"].get("time")) < 5
    assert "inside the nested subtest" in cases["first / nested"].find("system-out").text
    assert cases["first"].find("failure") is None
    failure = cases["broken"].find("failure")
    assert failure.get("message") == "arithmetic is broken"
    assert failure.get("type") == "AssertionError"
    assert "assert 1 + 1 == 3" in failure.text  # the traceback


def test_bad_junit_directory_is_a_usage_error(bed):
    r = bed.run_driver("pass\n", args=["-o", str(bed.out), "--junit-xml", "missing/junit.xml"])
    assert r.returncode == 2
    assert "--junit-xml" in r.stderr and "missing" in r.stderr


def test_no_subtests_gives_a_main_case(bed):
    r = bed.run_driver("log.info('no subtests here')\n", args=["--junit-xml", str(bed.root / "j.xml")])
    assert r.returncode == 0, r.stderr
    cases, names = parse_junit(bed.root / "j.xml")
    assert names == ["main"]
    assert cases["main"].find("failure") is None
    assert "no subtests here" in cases["main"].find("system-out").text


def test_failure_outside_subtests_and_global_timeout_go_to_main(bed):
    r = bed.run_driver("with subtest('fine'):\n    pass\nraise RuntimeError('outside any subtest')\n",
                       args=["--junit-xml", str(bed.root / "j.xml")])
    assert r.returncode == 1
    assert "!!! test script failed: outside any subtest" in r.stderr
    cases, names = parse_junit(bed.root / "j.xml")
    assert names == ["main", "fine"]
    assert cases["main"].find("failure").get("message") == "outside any subtest"
    assert cases["main"].find("failure").get("type") == "RuntimeError"

    r = bed.run_driver("import time\nwith subtest('slow'):\n    time.sleep(30)\n",
                       args=["--global-timeout", "1", "--junit-xml", str(bed.root / "t.xml")])
    assert r.returncode == 1
    cases, names = parse_junit(bed.root / "t.xml")
    assert names == ["slow"]
    error = cases["slow"].find("error")
    assert error.get("type") == "GlobalTimeout"
    assert "global timeout of 1 seconds reached" in error.get("message")


def test_sigterm_still_writes_the_report(bed):
    """A real guest: SIGTERM while a subtest waits on it; the report is
    written (well-formed, the subtest with an error) after cleanup."""
    script = bed.script("mini", "machine")
    marker = bed.root / "waiting"
    test = bed.root / "test.py"
    test.write_text(f"""
with subtest("boot"):
    machine.start()
    machine.succeed("true")
with subtest("wait forever"):
    open({str(marker)!r}, "w").close()
    machine.wait_until_succeeds("false")
""")
    report = bed.out / "junit.xml"
    proc = subprocess.Popen([driver_exe(), "--start-scripts", script, "-o", str(bed.out), "--junit-xml", "junit.xml",
                             "--", str(test)], env=bed.env(), cwd=bed.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the guest did not come up"
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "kill machine (pid " in err
    cases, names = parse_junit(report)
    assert names == ["boot", "wait forever"]
    assert cases["boot"].find("failure") is None and cases["boot"].find("error") is None
    error = cases["wait forever"].find("error")
    assert error is not None and error.get("type") == "KeyboardInterrupt"
    assert "machine: must succeed: true" in cases["boot"].find("system-out").text
