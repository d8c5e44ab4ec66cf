"""nix/sandbox-run: test scripts built as Nix derivations in the real Nix
sandbox (Debian's nix-bin), booting the mini guest inside it.

Each test gives sandbox-run a Nix state directory (configuration and chroot
store) of its own under the test's temporary directory, so nothing is
cached between tests and every derivation is really built.
"""
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, driver_exe, guest_image, require_tools

SANDBOX_RUN = SOURCE_DIR / "nix" / "sandbox-run"

# Records when it started and ended (after its VM booted and answered) in
# its derivation's output, and what the sandbox looks like from inside.
TIMED_SCRIPT = '''
import glob, os, time, uuid
out = os.environ["out"]
started = time.time()
open(f"marker-{uuid.uuid4().hex}", "w").close()
start_all()
machine.succeed("true")
with open(os.path.join(out, "times"), "w") as f:
    f.write(f"{started} {time.time()}\\n")
with open(os.path.join(out, "inside"), "w") as f:
    f.write(f"uid={os.getuid()} home={os.environ.get('HOME')} cwd={os.getcwd()} markers={len(glob.glob('marker-*'))} "
            f"home_exists={os.path.exists(os.environ['HOME'])} "
            f"inputs_writable={[os.access(os.environ[v], os.W_OK) for v in ('testScript', 'driver', 'image')]}\\n")
'''

FAILING_SCRIPT = '''
start_all()
machine.succeed("echo the guest ran this; exit 7")
'''


@pytest.fixture
def sandbox(bed):
    if os.geteuid() != 0:
        raise RuntimeError("nix/sandbox-run needs root (build users without a Nix daemon)")
    require_tools("nix-build", "nix-instantiate")
    image = guest_image("mini")

    def run(*scripts, jobs=1, builders=None, options=(), **env_extra):
        env = bed.env(TD_DRIVER_EXE=driver_exe(), **env_extra)
        options = [*options, *(["--builders", builders] if builders else [])]
        return subprocess.run([str(SANDBOX_RUN), "--state-dir", str(bed.root / "nix"), "-j", str(jobs),
                               "--image", str(image), *options,
                               *map(str, scripts)], env=env, cwd=bed.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=500)
    return run


def results(stdout: str) -> dict:
    """{script path: (verdict, path)} from sandbox-run's PASS/FAIL lines."""
    out = {}
    for line in stdout.splitlines():
        verdict, script, path = line.split(" ")
        out[script] = (verdict, Path(path))
    return out


def test_the_example_passes_in_the_sandbox(bed, sandbox):
    example = SOURCE_DIR / "examples" / "hello.py"
    r = sandbox(example)
    assert r.returncode == 0, r.stderr
    verdict, output = results(r.stdout)[str(example)]
    assert verdict == "PASS"
    # The output is in the private store, not the host's /nix.
    assert output.is_relative_to(bed.root / "nix" / "root" / "nix" / "store")
    log = ET.parse(output / "log.xml").getroot()
    assert "must succeed: echo hello" in ET.tostring(log, encoding="unicode")
    junit = ET.parse(output / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert int(suite.get("failures", "0")) == 0 and int(suite.get("errors", "0")) == 0
    assert int(suite.get("tests")) >= 2
    # The build really ran in Nix's sandbox: nix-build built a derivation.
    assert "building '/nix/store/" in r.stderr and "nixos-test-hello.drv" in r.stderr


def test_a_failing_script_fails_its_derivation(bed, sandbox):
    script = bed.root / "failing.py"
    script.write_text(FAILING_SCRIPT)
    r = sandbox(script)
    assert r.returncode == 1, r.stderr
    verdict, drv = results(r.stdout)[str(script)]
    assert verdict == "FAIL" and drv.name.endswith("-nixos-test-failing.drv")
    assert f"error: builder for '{drv}' failed" in r.stderr
    # The driver's error, from inside the sandbox, is in the build log.
    assert "the guest ran this" in r.stderr
    assert "failing> !!! test script failed: command `echo the guest ran this; exit 7` failed (exit code 7)" in r.stderr
    # Nix kept the failed build's log too.
    env = dict(os.environ, NIX_CONF_DIR=str(bed.root / "nix" / "etc"))
    stored = subprocess.run(["nix-store", "--store", f"local?root={bed.root / 'nix' / 'root'}", "--read-log",
                             str(drv)], env=env, stdout=subprocess.PIPE, text=True, check=True, timeout=60).stdout
    assert "failed (exit code 7)" in stored


def test_a_build_that_takes_too_long_is_killed(bed, sandbox):
    script = bed.root / "slow.py"
    script.write_text("import time\ntime.sleep(300)\n")
    r = sandbox(script, options=["--timeout", "3"])
    assert r.returncode == 1, r.stderr
    assert results(r.stdout)[str(script)][0] == "FAIL"
    assert "timed out after 3 seconds" in r.stderr


def test_two_scripts_build_in_parallel_each_in_its_own_sandbox(bed, sandbox):
    scripts = [bed.root / "first.py", bed.root / "second.py"]
    for s in scripts:
        s.write_text(TIMED_SCRIPT)
    r = sandbox(*scripts, jobs=2)
    assert r.returncode == 0, r.stderr
    found = results(r.stdout)
    outputs = [found[str(s)][1] for s in scripts]
    assert [found[str(s)][0] for s in scripts] == ["PASS", "PASS"]
    assert outputs[0] != outputs[1]
    # The interleaved logs say which build each line is from.
    assert "first> " in r.stderr and "second> " in r.stderr
    (a0, a1), (b0, b1) = ([float(x) for x in (o / "times").read_text().split()] for o in outputs)
    # Both VMs were up at the same time: each build started before the other ended.
    assert a0 < b1 and b0 < a1, ((a0, a1), (b0, b1))
    for o in outputs:
        # A build user (not root), the sandbox's non-existent home, and a
        # /build of its own: the other build's marker, written while both
        # ran, is not in it.
        inside = (o / "inside").read_text()
        assert "uid=0 " not in inside and "home=/homeless-shelter" in inside, inside
        assert "cwd=/build " in inside and "markers=1" in inside, inside
        # No home, and the inputs (the script in the store, the driver and
        # the image bound in from the host) are read-only to the build user.
        assert "home_exists=False" in inside and "inputs_writable=[False, False, False]" in inside, inside
        assert (o / "log.xml").is_file() and (o / "junit.xml").is_file()


def test_the_package_parses_and_takes_the_frameworks_overrides(bed):
    """nix/package.nix cannot be built without nixpkgs; Nix parses it, and
    its arguments include those nixpkgs' NixOS test framework overrides
    its driver package with (nixos/lib/testing/driver.nix)."""
    require_tools("nix-instantiate")
    package = SOURCE_DIR / "nix" / "package.nix"
    # A store of its own: evaluation must not create /nix on the host.
    store = ["--store", f"local?root={bed.root / 'nix-root'}"]
    parsed = subprocess.run(["nix-instantiate", *store, "--parse", str(package)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    args = subprocess.run(["nix-instantiate", *store, "--eval", "--json", "--expr",
                           f"builtins.functionArgs (import {package})"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert args.returncode == 0, args.stderr
    accepted = json.loads(args.stdout)
    for override in ("qemu_pkg", "enableOCR", "enableNspawn", "extraPythonPackages"):
        assert accepted.get(override) is True, f"{override} missing or without a default: {accepted}"
    for tool in ("qemu_test", "vde2", "socat", "netpbm", "tesseract4", "imagemagick_light", "python3", "boost",
                 "fmt", "cli11", "tinyxml2", "cmake"):
        assert tool in accepted
    assert "passthru" in parsed.stdout and "nixos-test-driver" in parsed.stdout


REMOTE_NIX_STORE = '''#!/bin/sh
# The remote builder's Nix: its own configuration, state and chroot store.
export NIX_CONF_DIR={conf} NIX_STATE_DIR={state}
exec /usr/bin/nix-store --store 'local?root={root}' "$@"
'''


@pytest.fixture
def remote_builder(bed):
    """A "remote" Nix builder on 127.0.0.1: an sshd of the test's own (a
    host key and a client key made for the test, its own port), whose Nix
    has a second store root and the same sandbox settings."""
    import socket
    import time
    require_tools("ssh", "ssh-keygen")
    if not Path("/usr/sbin/sshd").exists():
        raise RuntimeError("this test needs /usr/sbin/sshd (Debian's openssh-server; tools/install-deps)")
    r = bed.root / "remote"
    (r / "etc").mkdir(parents=True)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(r / key)], check=True, timeout=30)
    (r / "authorized_keys").write_text((r / "client_key.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (r / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {r / 'host_key'}\n"
        f"AuthorizedKeysFile {r / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    driver_dir = Path(driver_exe()).resolve().parent
    (r / "etc" / "nix.conf").write_text(
        "build-users-group = nixbld\nsandbox = true\nsandbox-fallback = false\nsubstituters =\n"
        f"extra-sandbox-paths = /bin /usr /lib /lib64 /etc/alternatives {driver_dir} "
        f"{SOURCE_DIR / 'tests' / 'guests'} {guest_image('mini')}\nmax-jobs = 1\ncores = 1\n")
    program = r / "remote-nix-store"
    program.write_text(REMOTE_NIX_STORE.format(conf=r / "etc", state=r / "var" / "nix", root=r / "root"))
    program.chmod(0o755)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = open(r / "sshd.log", "w")
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(r / "sshd_config")], stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if sshd.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {(r / 'sshd.log').read_text()}")
                time.sleep(0.1)
        ssh_opts = (f"-p {port} -o UserKnownHostsFile={r / 'known_hosts'} -o StrictHostKeyChecking=accept-new "
                    "-o IdentitiesOnly=yes -o BatchMode=yes")
        yield {"builders": f"ssh://root@127.0.0.1?remote-program={program} x86_64-linux {r / 'client_key'} 1",
               "NIX_SSHOPTS": ssh_opts, "store": r / "root" / "nix" / "store", "log": r / "sshd.log"}
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
        log.close()


def test_a_script_built_on_a_remote_builder(bed, sandbox, remote_builder):
    example = SOURCE_DIR / "examples" / "hello.py"
    r = sandbox(example, builders=remote_builder["builders"], NIX_SSHOPTS=remote_builder["NIX_SSHOPTS"])
    assert r.returncode == 0, r.stderr
    verdict, output = results(r.stdout)[str(example)]
    assert verdict == "PASS"
    # Nix's distributed builds: the derivation went over SSH, was built in
    # the remote's store and sandbox, and its output came back.
    assert "nixos-test-hello.drv' on 'ssh://root@127.0.0.1" in r.stderr
    assert "from 'ssh://root@127.0.0.1" in r.stderr
    assert (remote_builder["store"] / output.name / "junit.xml").is_file()
    assert (output / "log.xml").is_file() and (output / "junit.xml").is_file()
    assert "Accepted publickey for root" in remote_builder["log"].read_text()


def test_without_root_it_says_what_it_needs(bed):
    """Without a Nix daemon only root builds as the nixbld users: as another
    user sandbox-run stops at once with exit status 2 and says why."""
    require_tools("setpriv")
    script = bed.root / "t.py"
    script.write_text("")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SANDBOX_RUN), str(script)],
                       env=bed.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "needs root" in r.stderr and "nixbld" in r.stderr
