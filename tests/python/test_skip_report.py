"""tests/conftest.py's skip list: every pytest run prints it, and a skip
not named in EXPECTED_SKIPS fails a run that would otherwise pass (ctest
shows a passing pytest's output to no one)."""
import os
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def run_pytest(tmp_path, test_text, expected_skips=None):
    # The project's conftest.py, run as this directory's own.
    text = f"exec(compile(open({str(CONFTEST)!r}).read(), {str(CONFTEST)!r}, 'exec'))\n"
    if expected_skips:
        text += f"EXPECTED_SKIPS.update({expected_skips!r})\n"
    (tmp_path / "conftest.py").write_text(text)
    (tmp_path / "test_it.py").write_text(test_text)
    report = tmp_path / "skips.txt"
    env = dict(os.environ, TD_SKIP_REPORT=str(report), TD_SOURCE_DIR=str(CONFTEST.parent.parent))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_it.py"], cwd=tmp_path,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    return r, report.read_text() if report.exists() else None


SKIPPING = "import pytest\ndef test_runs():\n    pass\ndef test_skips():\n    pytest.skip('no widget here')\n"


def test_an_unnamed_skip_fails_the_run_and_is_listed(tmp_path):
    r, report = run_pytest(tmp_path, SKIPPING)
    assert r.returncode == 1, r.stdout
    assert "UNEXPECTED: test_it.py::test_skips: Skipped: no widget here" in r.stdout
    assert report.splitlines()[0] == "skipped tests: 1 (1 not named in tests/conftest.py EXPECTED_SKIPS)"


def test_a_named_skip_passes_and_is_listed_with_its_reason(tmp_path):
    r, report = run_pytest(tmp_path, SKIPPING, {"test_it.py::test_skips": "widgets are optional"})
    assert r.returncode == 0, r.stdout
    assert "expected: test_it.py::test_skips: widgets are optional" in report


def test_no_skip_says_so(tmp_path):
    r, report = run_pytest(tmp_path, "def test_runs():\n    pass\n")
    assert r.returncode == 0, r.stdout
    assert report == "skipped tests: 0 (0 not named in tests/conftest.py EXPECTED_SKIPS)\n"
