"""nixos-test-driver run as a subprocess on real `mini` guests: flags,
environment variables, exit status, the XML log, the script's symbols."""
import xml.etree.ElementTree as ET
from pathlib import Path



def parse_log(path):
    root = ET.parse(path).getroot()
    assert root.tag == "logfile"
    return root


def test_two_machines_xml_log_and_symbols(bed):
    a = bed.script("mini", "alpha")
    b = bed.script("mini", "beta")
    log = bed.root / "log.xml"
    r = bed.run_driver(
        """
start_all()
assert sorted(m.name for m in machines) == ["alpha", "beta"]
assert "machine" not in globals()
with subtest("both answer"):
    assert alpha.succeed("hostname").strip() == "alpha"
    assert beta.succeed("echo $((6*7))") == "42\\n"
print("driver is", type(driver).__name__, "log is", type(log).__name__, "retry", retry.__name__)
""",
        args=["--start-scripts", a, b, "--"],
        env=bed.env(LOGFILE=str(log)),
    )
    assert r.returncode == 0, r.stderr
    assert "driver is Driver log is Logger retry retry" in r.stdout
    assert "test script finished in " in r.stderr
    assert "alpha: must succeed: hostname" in r.stderr
    root = parse_log(log)
    heads = [h.text for h in root.iter("head")]
    assert "both answer" in heads and "run the VM test script" in heads
    serial = [l for l in root.iter("line") if l.get("type") == "serial"]
    assert {l.get("machine") for l in serial} == {"alpha", "beta"}
    assert any(l.get("machine") == "alpha" and l.text == "connected to guest root shell" for l in root.iter("line"))


def test_failure_exit_status_traceback_and_cleanup(bed):
    script = bed.script("mini", "machine")
    log = bed.root / "log.xml"
    r = bed.run_driver("machine.start()\n\nmachine.succeed('exit 4')\n", args=["--start-scripts", script, "--"],
                       env=bed.env(LOGFILE=str(log)))
    assert r.returncode == 1
    assert "test.py\", line 3, in <module>" in r.stderr
    assert "command `exit 4` failed (exit code 4)" in r.stderr
    assert "kill machine (pid " in r.stderr
    parse_log(log)  # well-formed although the test failed
    assert not list(bed.tmp.glob("vm-state-machine/*.pid"))


def test_environment_variables_and_single_machine_alias(bed):
    script = bed.script("mini", "server")
    (bed.root / "t.py").write_text("assert machine is server\nserver.succeed('true')\n")
    env = bed.env(startScripts=script, testScript=str(bed.root / "t.py"))
    import subprocess
    from conftest import driver_exe
    r = subprocess.run([driver_exe()], env=env, cwd=bed.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Machine state will be reset" in r.stderr


def test_keep_vm_state(bed):
    script = bed.script("mini", "machine")
    state = bed.tmp / "vm-state-machine"
    state.mkdir(parents=True)
    (state / "marker").write_text("x")
    r = bed.run_driver("assert os.path.exists(machine.state_dir / 'marker')\n", args=["-K", "--start-scripts", script, "--"])
    assert r.returncode == 0, r.stderr
    assert "Machine state will be reset" not in r.stderr
    r = bed.run_driver("assert not os.path.exists(machine.state_dir / 'marker')\n", args=["--start-scripts", script, "--"])
    assert r.returncode == 0, r.stderr


def test_output_directory_must_be_writable_dir(bed):
    r = bed.run_driver("pass\n", args=["-o", str(bed.root / "missing")])
    assert r.returncode == 2 and "is not a directory" in r.stderr
    r = bed.run_driver("assert driver.out_dir == __import__('pathlib').Path(%r)\n" % str(bed.out),
                       args=["-o", str(bed.out)])
    assert r.returncode == 0, r.stderr


def test_directories_the_user_cannot_write_are_refused():
    # As uid 65534 (root may write anywhere): a read-only output directory
    # or TMPDIR is an error naming it; writable ones are accepted.
    import subprocess
    import tempfile
    from conftest import unprivileged_driver
    with tempfile.TemporaryDirectory(prefix="td-nobody-") as name:
        top = Path(name)
        top.chmod(0o755)
        argv, env = unprivileged_driver(top)
        (top / "t.py").write_text("pass\n")
        (top / "t.py").chmod(0o644)
        ro = top / "ro"
        ro.mkdir(mode=0o755)  # root's: uid 65534 may read, not write
        rw = top / "rw"
        rw.mkdir()
        rw.chmod(0o777)

        def run(out_dir, tmp_dir):
            return subprocess.run([*argv, "-o", str(out_dir), str(top / "t.py")], env=dict(env, TMPDIR=str(tmp_dir)),
                                  cwd=rw, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)

        r = run(rw, rw)
        assert r.returncode == 0, r.stderr
        r = run(ro, rw)
        assert r.returncode == 2, r.stderr
        assert f"argument -o/--output_directory: {ro} is not a writeable directory" in r.stderr
        r = run(rw, ro)
        assert r.returncode != 0, r.stderr
        assert f"The directory defined by TMPDIR, TEMP, TMP, or CWD: {ro} is not writeable" in r.stderr


def test_missing_test_script_and_no_vlans(bed):
    import subprocess
    from conftest import driver_exe
    r = subprocess.run([driver_exe(), str(bed.root / "nope.py")], env=bed.env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 2 and "nope.py" in r.stderr
    env = bed.env()
    env.pop("vlans", None)
    r = bed.run_driver("assert vlans == [] and machines == []\n", env=env)
    assert r.returncode == 0, r.stderr


def test_vlans_flag_starts_vde_switch(bed):
    r = bed.run_driver(
        "assert [v.nr for v in vlans] == [1, 3]\n"
        "assert os.path.exists(os.environ['QEMU_VDE_SOCKET_3'] + '/ctl')\n"
        "assert vlan1.nr == 1\n",
        args=["--vlans", "1", "3", "--"])
    assert r.returncode == 0, r.stderr
    assert "running vlan (pid " in r.stderr and "kill vlan (pid " in r.stderr


def test_polling_condition_fails_the_test(bed):
    script = bed.script("mini", "machine")
    r = bed.run_driver(
        """
@polling_condition(seconds_interval=0)
def no_bad_file():
    "no /tmp/bad in the guest"
    machine.succeed("test ! -e /tmp/bad")

with no_bad_file:
    machine.succeed("true")
    machine.succeed("touch /tmp/bad")
    machine.succeed("true")
""",
        args=["--start-scripts", script, "--"])
    assert r.returncode == 1
    assert "Polling condition succeeded: no /tmp/bad in the guest" in r.stderr
    assert "PollingConditionFailed: Polling condition failed: no /tmp/bad in the guest" in r.stderr


def test_polling_condition_runs_before_every_command_and_its_failure_reaches_the_script(bed):
    # Counted by the condition itself: once before each command and monitor
    # command inside `with`, never outside it; when it stops holding, the
    # command is not run and PollingConditionFailed reaches the script.
    script = bed.script("mini", "machine")
    r = bed.run_driver(
        """
from test_driver.errors import PollingConditionFailed
calls = []

@polling_condition(seconds_interval=0)
def counted():
    "the counted condition"
    calls.append(1)
    return not os.path.exists("bad")

machine.succeed("true")
assert calls == [], calls
with counted:
    machine.succeed("true")
    machine.execute("true")
    machine.send_monitor_command("info status")
    assert len(calls) == 3, calls
    open("bad", "w").close()
    try:
        machine.succeed("touch /tmp/ran")
        raise AssertionError("the command ran although the condition failed")
    except PollingConditionFailed as e:
        assert "Polling condition failed: the counted condition" in str(e), str(e)
    assert len(calls) == 4, calls
    os.remove("bad")
machine.fail("test -e /tmp/ran")
assert len(calls) == 4, calls
print("polling-checked")
""",
        args=["--start-scripts", script, "--"])
    assert r.returncode == 0, r.stderr
    assert "polling-checked" in r.stdout


def test_interactive_flag_reads_commands(bed):
    script = bed.script("mini", "machine")
    import subprocess
    test = bed.root / "empty.py"
    test.write_text("")
    from conftest import driver_exe
    r = subprocess.run([driver_exe(), "-I", "--start-scripts", script, "--", str(test)], env=bed.env(), cwd=bed.root,
                       input="print('answer', machine.succeed('echo $((41+1))').strip())\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "answer 42" in r.stdout
    assert "kill machine" in r.stderr


def test_list_flags_take_no_values_like_argparse(bed):
    # argparse's nargs="*": an empty list, and the next option is not a value.
    script = "print('seen', [m.name for m in machines], [v.nr for v in vlans])\n"
    for args in (["--start-scripts", "-o", str(bed.out), "--"], ["--start-scripts", "--"],
                 ["--vlans", "--start-scripts", "--"]):
        r = bed.run_driver(script, args=args)
        assert r.returncode == 0, (args, r.stderr)
        assert "seen [] []" in r.stdout, (args, r.stdout)


def test_console_interact_forwards_stdin_to_the_serial_console(bed):
    import subprocess
    from conftest import driver_exe
    script = bed.script("mini", "machine")
    test = bed.root / "console.py"
    test.write_text(
        "machine.succeed('stty -F /dev/ttyS0 -echo; (head -n 1 /dev/ttyS0 > /tmp/got) >/dev/null 2>&1 &')\n"
        "machine.console_interact()\n"
        "machine.wait_until_succeeds('grep -q typed-into-the-console /tmp/got', timeout=30)\n")
    r = subprocess.run([driver_exe(), "--start-scripts", script, "--", str(test)], env=bed.env(), cwd=bed.root,
                       input="typed-into-the-console\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Closing connection to the console" in r.stderr
