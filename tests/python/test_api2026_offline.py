"""Upstream's 2026 API without a machine: retry's keyword names and message,
the -c configuration's keys."""
import json
import subprocess

import pytest

from conftest import driver_exe

from test_driver import errors
from test_driver.config import ConfigError, load_config
from test_driver.machine import retry


def test_retry_timeout_seconds_and_timeout():
    calls = []
    retry(lambda last: calls.append(last) or len(calls) == 2, timeout_seconds=10)
    assert calls == [False, False]
    seen = []
    with pytest.raises(errors.RequestedAssertionFailed, match=r"^action timed out after 0\.\d\d seconds \(timeout=0\.5\)$"):
        retry(lambda last: seen.append(last) or False, 0.5)
    assert seen[0] is False and seen[-1] is True and seen.count(True) == 1
    with pytest.raises(errors.RequestedAssertionFailed, match=r"\(timeout=0\.3\)"):
        retry(lambda last: False, timeout=0.3)
    with pytest.raises(TypeError, match="both timeout_seconds and timeout"):
        retry(lambda last: True, 5, timeout=5)


def write(tmp_path, data) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def script(tmp_path, name: str) -> str:
    path = tmp_path / f"run-{name}-vm"
    path.write_text("#!/bin/sh\n")
    return str(path)


def test_config_every_upstream_key(tmp_path):
    (tmp_path / "t.py").write_text("pass\n")
    config = load_config(write(tmp_path, {
        "vms": {"server": {"name": "server", "start_script": script(tmp_path, "server")}},
        "containers": {},
        "display_viewers": {"vnc": {"kind": "vnc", "executable": "/bin/true"}},
        "vlans": [1],
        "global_timeout": 120,
        "enable_ssh_backdoor": False,
        "test_script": "t.py",
    }))
    assert config.start_scripts == [script(tmp_path, "server")]
    assert config.vlans == [1] and config.global_timeout == 120.0
    assert config.test_script == str(tmp_path / "t.py")


@pytest.mark.parametrize("text,seconds", [("PT1H30M", 5400.0), ("P1DT2S", 86402.0), ("PT0.5S", 0.5)])
def test_config_global_timeout_as_iso_8601(tmp_path, text, seconds):
    assert load_config(write(tmp_path, {"global_timeout": text})).global_timeout == seconds


@pytest.mark.parametrize("data,message", [
    ({"vms": {}, "memory": 1, "cores": 2}, "unknown keys 'memory', 'cores' (known: vms, containers, vlans, "
                                           "global_timeout, test_script, display_viewers, enable_ssh_backdoor, html_report, keep_going, video)"),
    ({"containers": {"box": {"name": "box", "start_script": "/x/run-box-vm"}}},
     "'containers.box': the start script /x/run-box-vm of a container must be named run-<name>-nspawn"),
    ({"containers": {"box": {"start_script": "/x/run-other-nspawn"}}},
     "'containers.box' names the container 'box', but its start script /x/run-other-nspawn gives 'other'"),
    ({"containers": {"box": {"start_script": "/x/run-box-nspawn", "display_targets": [{"kind": "x11"}]}}},
     "'containers.box.display_targets': containers' displays are not supported by this driver"),
    ({"vms": {"box": {"start_script": "/x/run-box-nspawn"}}},
     "'vms.box': /x/run-box-nspawn is a container's start script (run-<name>-nspawn): list it under 'containers'"),
    ({"enable_ssh_backdoor": True}, "'enable_ssh_backdoor': the SSH backdoor is not supported"),
    ({"enable_ssh_backdoor": "no"}, "'enable_ssh_backdoor' must be a boolean, not a string"),
    ({"display_viewers": []}, "'display_viewers' must be an object, not a list"),
    ({"display_viewers": {"vnc": "viewer"}}, "'display_viewers.vnc' must be an object, not a string"),
    ({"global_timeout": "an hour"}, "'global_timeout' must be a number of seconds or an ISO 8601 duration"),
    ({"global_timeout": "PT"}, "'global_timeout' must be a number of seconds or an ISO 8601 duration"),
    ({"video": "yes"}, "'video' must be a boolean, not a string"),
])
def test_config_errors_name_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    assert message in str(caught.value)


def test_config_video_key(tmp_path):
    assert load_config(write(tmp_path, {"video": True})).video is True
    assert load_config(write(tmp_path, {"video": False})).video is False
    assert load_config(write(tmp_path, {})).video is None


def test_config_error_on_the_command_line(tmp_path):
    path = write(tmp_path, {"containers": {"box": {}}, "test_script": "t.py"})
    r = subprocess.run([driver_exe(), "-c", path], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "'containers.box.start_script' is missing" in r.stderr
