"""-c/--config: the driver configuration as a JSON file, instead of
--start-scripts, --vlans, --global-timeout and the test script argument.
Relative paths in it are relative to the file's directory.

    {"vms": {"server": {"name": "server", "start_script": "/nix/store/…/bin/run-server-vm"}, …}
         or [{"name": "server", "start_script": "…"}, …],
     "containers": {}, "display_viewers": {}, "enable_ssh_backdoor": false,
     "vlans": [1, 2], "global_timeout": 3600, "test_script": "test.py",
     "html_report": "report.html", "keep_going": true, "video": true}

Every key of upstream's file is known (none is required: what the file does
not set comes from the command line, the environment or the defaults); an
unknown key is an error naming it. Containers are systemd-nspawn machines,
their start scripts named run-<name>-nspawn. What this driver cannot do is
an error too: containers' displays and the SSH backdoor (vhost-vsock).
global_timeout is seconds, or an ISO 8601 duration ("PT1H30M") as pydantic
reads upstream's timedelta. Three keys are this driver's own, as its flags:
html_report (--html-report; relative to the output directory, like the
flag), keep_going (--keep-going) and video (--video).
"""
from __future__ import annotations

import json
import os

from test_driver._core import NixStartScript, NspawnMachine

__all__ = ["Config", "ConfigError", "load_config"]

KEYS = ("vms", "containers", "vlans", "global_timeout", "test_script", "display_viewers", "enable_ssh_backdoor",
        "html_report", "keep_going", "video")


class ConfigError(Exception):
    """The file cannot be used; the message names the file and the key."""


class Config:
    """What a configuration file gives; None for each key it does not set."""

    def __init__(self) -> None:
        self.start_scripts: list[str] | None = None
        self.vlans: list[int] | None = None
        self.global_timeout: float | None = None
        self.test_script: str | None = None
        self.html_report: str | None = None
        self.keep_going: bool | None = None
        self.video: bool | None = None


def _is_number(value: object) -> bool:
    # bool is an int subclass in Python, but not a number in JSON.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "unknown"


def _iso_duration(text: str) -> float | None:
    """Seconds of an ISO 8601 duration (PnDTnHnMnS, as pydantic reads a
    timedelta), else None."""
    import re

    m = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                     r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?", text)
    if m is None or text in ("P", "PT") or text.endswith("T"):
        return None
    weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def load_config(path: str) -> Config:
    """Reads and checks the configuration at `path`; raises ConfigError."""
    try:
        with open(path, "rb") as fp:
            text = fp.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be an object, not {_json_type(data)}")
    base = os.path.dirname(path)

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{path}: {message}")

    def resolve(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(base, p)

    def string_at(value: object, key: str) -> str:
        if not isinstance(value, str):
            raise fail(f"'{key}' must be a string, not {_json_type(value)}")
        if not value:
            raise fail(f"'{key}' must not be empty")
        return value

    def vm_script(vm: object, key: str, name: str | None, container: bool = False) -> str:
        """The start script of one entry of 'vms' (or, container, of 'containers')."""
        if isinstance(vm, str):
            script = string_at(vm, key)
        elif isinstance(vm, dict):
            known = ("name", "start_script", "display_targets", "display_exporters") if container else ("name", "start_script")
            for k in vm:
                if k not in known:
                    raise fail(f"unknown key '{key}.{k}'")
            for k in ("display_targets", "display_exporters"):
                if vm.get(k):
                    raise fail(f"'{key}.{k}': containers' displays are not supported by this driver")
            if "start_script" not in vm:
                raise fail(f"'{key}.start_script' is missing")
            script = string_at(vm["start_script"], key + ".start_script")
            if "name" in vm:
                given = string_at(vm["name"], key + ".name")
                if name is not None and name != given:
                    raise fail(f"'{key}.name' is '{given}', but the key says '{name}'")
                name = given
        else:
            raise fail(f"'{key}' must be an object or a string, not {_json_type(vm)}")
        script = resolve(script)
        if container:
            # A container is known by its start script's name, run-<name>-nspawn.
            if not NspawnMachine.is_container_script(script):
                raise fail(f"'{key}': the start script {script} of a container must be named run-<name>-nspawn")
            derived = NspawnMachine.name_from_script(script)
            if name is not None and name != derived:
                raise fail(f"'{key}' names the container '{name}', but its start script {script} gives '{derived}'")
            return script
        if NspawnMachine.is_container_script(script):
            raise fail(f"'{key}': {script} is a container's start script (run-<name>-nspawn): list it under 'containers'")
        # The driver names a machine after its start script, run-<name>-vm.
        derived = NixStartScript(script).machine_name
        if name is not None and name != derived:
            raise fail(f"'{key}' names the machine '{name}', but its start script {script} gives '{derived}' "
                       "(machines are named after run-<name>-vm)")
        return script

    unknown = [k for k in data if k not in KEYS]
    if unknown:
        names = ", ".join(f"'{k}'" for k in unknown)
        raise fail(f"unknown key{'s' if len(unknown) > 1 else ''} {names} (known: {', '.join(KEYS)})")
    config = Config()
    containers: list[str] = []
    for key, value in data.items():
        if key == "vms":
            if isinstance(value, list):
                config.start_scripts = [vm_script(vm, f"vms[{i}]", None) for i, vm in enumerate(value)]
            elif isinstance(value, dict):
                config.start_scripts = [vm_script(vm, f"vms.{name}", name) for name, vm in value.items()]
            else:
                raise fail(f"'vms' must be a list or an object, not {_json_type(value)}")
        elif key == "containers":
            if isinstance(value, list):
                containers = [vm_script(c, f"containers[{i}]", None, container=True) for i, c in enumerate(value)]
            elif isinstance(value, dict):
                containers = [vm_script(c, f"containers.{name}", name, container=True) for name, c in value.items()]
            else:
                raise fail(f"'containers' must be an object, not {_json_type(value)}")
        elif key == "display_viewers":
            # Viewers of containers' displays (upstream: {"vnc": {"kind": "vnc", "executable": …}}): with no
            # containers there is nothing to view.
            if not isinstance(value, dict):
                raise fail(f"'display_viewers' must be an object, not {_json_type(value)}")
            for protocol, viewer in value.items():
                if not isinstance(viewer, dict):
                    raise fail(f"'display_viewers.{protocol}' must be an object, not {_json_type(viewer)}")
        elif key == "enable_ssh_backdoor":
            if not isinstance(value, bool):
                raise fail(f"'enable_ssh_backdoor' must be a boolean, not {_json_type(value)}")
            if value:
                raise fail("'enable_ssh_backdoor': the SSH backdoor is not supported by this driver "
                           "(it needs vhost-vsock, /dev/vhost-vsock)")
        elif key == "vlans":
            if not isinstance(value, list):
                raise fail(f"'vlans' must be a list, not {_json_type(value)}")
            config.vlans = []
            for nr in value:
                if not isinstance(nr, int) or isinstance(nr, bool):
                    raise fail(f"'vlans' must hold integers, not {_json_type(nr)}")
                if nr < 0 or nr > 65535:
                    raise fail(f"'vlans': invalid VLAN number {nr}")
                config.vlans.append(nr)
        elif key == "global_timeout":
            seconds = _iso_duration(value) if isinstance(value, str) else value
            if not _is_number(seconds):
                raise fail(f"'global_timeout' must be a number of seconds or an ISO 8601 duration, not "
                           f"{_json_type(value) if not isinstance(value, str) else repr(value)}")
            if not seconds > 0 or seconds > 1e9:
                raise fail("'global_timeout' must be a positive number of seconds")
            config.global_timeout = float(seconds)
        elif key == "test_script":
            config.test_script = resolve(string_at(value, key))
        elif key == "html_report":
            config.html_report = string_at(value, key)
        elif key == "keep_going":
            if not isinstance(value, bool):
                raise fail(f"'keep_going' must be a boolean, not {_json_type(value)}")
            config.keep_going = value
        elif key == "video":
            if not isinstance(value, bool):
                raise fail(f"'video' must be a boolean, not {_json_type(value)}")
            config.video = value
    if containers:
        config.start_scripts = [*(config.start_scripts or []), *containers]
    return config
