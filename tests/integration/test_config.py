"""-c/--config: the JSON driver configuration (vms, vlans, global_timeout,
test_script) instead of --start-scripts/--vlans/testscript, its errors
(exit 2, naming the key), and --keep-machine-state."""
import json
import subprocess

from conftest import driver_exe


def run(bed, *args, env=None):
    return subprocess.run([driver_exe(), *args], env=env or bed.env(), cwd=bed.root, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def write_config(bed, data, name="config.json"):
    path = bed.root / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_config_boots_its_machines_and_runs_its_script(bed):
    script = bed.script("mini", "server")
    (bed.root / "t.py").write_text("assert machine is server\nprint('vlans', [v.nr for v in vlans])\n"
                                   "print(server.succeed('hostname').strip())\n")
    # test_script relative to the config's directory
    config = write_config(bed, {"vms": [{"name": "server", "start_script": script}], "vlans": [3],
                                "global_timeout": 600, "test_script": "t.py"})
    r = run(bed, "--config", config)
    assert r.returncode == 0, r.stderr
    assert "vlans [3]" in r.stdout and "server\n" in r.stdout


def test_object_form_and_flags_override_keys(bed):
    script = bed.script("mini", "alpha")
    config = write_config(bed, {"vms": {"alpha": {"start_script": script}}, "vlans": [1, 2],
                                "test_script": "/nonexistent.py", "global_timeout": 1})
    (bed.root / "t.py").write_text("import time\nassert [m.name for m in machines] == ['alpha']\n"
                                   "assert [v.nr for v in vlans] == [7]\ntime.sleep(1.5)\n")
    r = run(bed, "-c", config, "--vlans", "7", "--global-timeout", "60", str(bed.root / "t.py"))
    assert r.returncode == 0, r.stderr


def test_config_errors_name_the_problem(bed):
    script = bed.script("mini", "alpha")
    cases = [
        (None, "cannot read"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "the top level must be an object"),
        ({"vms": 3}, "'vms' must be a list or an object, not a number"),
        ({"vms": [{"name": "alpha"}]}, "'vms[0].start_script' is missing"),
        ({"vms": [{"start_script": 5}]}, "'vms[0].start_script' must be a string"),
        ({"vms": [{"name": "beta", "start_script": script}]}, "'vms[0]' names the machine 'beta'"),
        ({"vms": [{"start_script": script, "memory": 1}]}, "unknown key 'vms[0].memory'"),
        ({"vlans": "1"}, "'vlans' must be a list, not a string"),
        ({"vlans": [1, True]}, "'vlans' must hold integers, not a boolean"),
        ({"global_timeout": "1h"}, "'global_timeout' must be a number of seconds or an ISO 8601 duration, not '1h'"),
        ({"global_timeout": -1}, "'global_timeout' must be a positive number"),
        ({"test_script": ["t.py"]}, "'test_script' must be a string, not a list"),
        ({"testScript": "t.py"}, "unknown key 'testScript'"),
    ]
    for data, message in cases:
        path = str(bed.root / "missing.json") if data is None else write_config(bed, data)
        r = run(bed, "--config", path)
        assert r.returncode == 2, (data, r.stderr)
        assert "argument -c/--config" in r.stderr and message in r.stderr, (data, r.stderr)


def test_keep_machine_state_is_the_new_name_of_keep_vm_state(bed):
    (bed.root / "t.py").write_text("pass\n")
    for flag in ("--keep-machine-state", "--keep-vm-state", "-K"):
        r = run(bed, flag, str(bed.root / "t.py"))
        assert r.returncode == 0, r.stderr
        assert "Machine state will be reset" not in r.stderr
    r = run(bed, str(bed.root / "t.py"))
    assert "Machine state will be reset" in r.stderr
