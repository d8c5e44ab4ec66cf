"""The type stubs shipped with the package (test_driver/_core.pyi, py.typed)
match the built module, so mypy and editors see the real API.

- mypy.stubtest: every public name of the package exists in the stubs and
  at run time, with the same kind (class, function, property, attribute).
- pybind11 functions have no inspectable signature, so stubtest cannot
  compare parameters: compare them here with the signatures pybind11 writes
  into the docstrings (names, kinds, defaults).
- mypy type-checks a test script written against the API and rejects a
  wrong one.
- docs/api.md is what docs/gen_api.py generates from the docstrings.
"""
import ast
import os
import subprocess
from pathlib import Path

import test_driver
import test_driver._core as core

PACKAGE_DIR = Path(test_driver.__file__).parent
STUB = PACKAGE_DIR / "_core.pyi"

# pybind11 classes have the metaclass pybind11_builtins.pybind11_type, which
# stubs do not spell; classes without a constructor raise TypeError from
# __init__, which the stubs express by not declaring one.
NO_CONSTRUCTOR = ["BaseMachine", "LogNest", "StartCommand"]


def stub_constants():
    """Module-level `NAME: Final = literal` of the stub, by name."""
    found = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = ast.literal_eval(node.value)
    return found


STUB_CONSTANTS = stub_constants()


def test_stub_constants_are_the_cores():
    assert STUB_CONSTANTS and all(getattr(core, name) == value for name, value in STUB_CONSTANTS.items())


def pybind_classes():
    return sorted(n for n, o in vars(core).items() if isinstance(o, type) and type(o).__name__ == "pybind11_type")


def test_stub_files_are_in_the_package():
    assert STUB.is_file()
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_stubtest(tmp_path):
    allowlist = tmp_path / "allowlist"
    # (regular expressions; the submodules re-export the classes)
    allowlist.write_text(f"test_driver\\.\\w+\\.({'|'.join(pybind_classes())})\n"
                         f"test_driver\\.\\w+\\.({'|'.join(NO_CONSTRUCTOR)})\\.__init__\n")
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent), MYPY_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run(["/usr/bin/python3", "-m", "mypy.stubtest", "--allowlist", str(allowlist), "test_driver"],
                       env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0, r.stdout


# --- parameters, from pybind11's docstring signatures

def parse_params(text: str) -> ast.arguments:
    return ast.parse(f"def f({text}): pass").body[0].args


def shape(args: ast.arguments, drop_self: bool):
    """(name, kind, default) per parameter; default is a literal value, '...' for
    a non-literal one, or None when there is none."""

    def default(node):
        if node is None:
            return None
        if isinstance(node, ast.Name) and node.id in STUB_CONSTANTS:  # DEFAULT_TIMEOUT
            return ("=", STUB_CONSTANTS[node.id])
        try:
            return ("=", ast.literal_eval(node))
        except ValueError:
            return ("=", "...")

    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = [(a.arg, "positional", default(d)) for a, d in zip(positional, defaults)]
    if args.vararg:
        out.append(("*" + args.vararg.arg, "var", None))
    out += [(a.arg, "keyword", default(d)) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        out.append(("**" + args.kwarg.arg, "var", None))
    if drop_self and out and out[0][0] == "self":
        out = out[1:]
    # Names of *args differ without meaning (pybind11 calls them all "args").
    return [("*", k, d) if n.startswith("*") and not n.startswith("**") else (n, k, d) for n, k, d in out]


def runtime_functions():
    """qualified name -> (callable, is_method) for every public function of _core."""
    found = {}
    for name, obj in vars(core).items():
        if name.startswith("_"):
            continue
        if isinstance(obj, type) and type(obj).__name__ == "pybind11_type":
            for attr, value in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__enter__", "__exit__"):
                    continue
                if isinstance(value, staticmethod):
                    found[f"{name}.{attr}"] = (value.__func__, False)
                elif type(value).__name__ == "instancemethod":
                    found[f"{name}.{attr}"] = (value.__func__, True)
        elif type(obj).__name__ == "builtin_function_or_method":
            found[name] = (obj, False)
    return found


def stub_functions():
    """qualified name -> list of (ast.FunctionDef, is_static) (several for @overload)."""
    tree = ast.parse(STUB.read_text())
    found = {}

    def visit(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.FunctionDef):
                decorators = {d.id for d in node.decorator_list if isinstance(d, ast.Name)}
                if "property" in decorators:
                    continue
                found.setdefault(prefix + node.name, []).append((node, "staticmethod" in decorators))

    visit(tree.body, "")
    return found


def docstring_signatures(fn, name):
    """The parameter lists pybind11 put in the docstring (one per overload)."""
    short = name.split(".")[-1]
    lines = (fn.__doc__ or "").splitlines()
    sigs = []
    for line in lines:
        line = line.strip()
        for prefix in (f"{short}(", *(f"{i}. {short}(" for i in range(1, 10))):
            if line.startswith(prefix) and ") -> " in line:
                sigs.append(line[len(prefix):line.rindex(") -> ")])
    assert sigs, f"no signature in the docstring of {name}: {fn.__doc__!r}"
    return sigs


def test_every_function_has_a_stub_with_its_parameters():
    runtime = runtime_functions()
    stubs = stub_functions()
    # Finding nothing would pass everything: the core has dozens of each.
    assert sum(1 for _, is_method in runtime.values() if is_method) > 50 and len(stubs) > 50
    assert "BaseMachine.execute" in runtime and "Machine.send_monitor_command" in runtime
    problems = []
    for name, (fn, is_method) in sorted(runtime.items()):
        if name.split(".")[0] in NO_CONSTRUCTOR and name.endswith(".__init__"):
            continue
        if name not in stubs:
            problems.append(f"{name}: not in {STUB.name}")
            continue
        want = [shape(parse_params(s), drop_self=is_method) for s in docstring_signatures(fn, name)]
        defs = stubs[name]
        got = [shape(d.args, drop_self=not static) for d, static in defs]
        if len(defs) > 1:
            # @overload in the stub for one runtime signature: same names and kinds.
            strip = lambda s: [(n, k) for n, k, _ in s]  # noqa: E731
            bad = [g for g in got if strip(g) != strip(want[0])]
            if bad:
                problems.append(f"{name}: overloads {bad} differ from {want[0]}")
        elif got != want:
            problems.append(f"{name}: stub {got}\n    runtime {want}")
    assert not problems, "\n".join(problems)


def test_shape_sees_differences():
    a = shape(parse_params("self, command: str, timeout: object = 900"), True)
    assert a == [("command", "positional", None), ("timeout", "positional", ("=", 900))]
    assert a != shape(parse_params("self, command: str, timeout: object = None"), True)
    assert a != shape(parse_params("self, cmd: str, timeout: object = 900"), True)
    assert shape(parse_params("self, *args, timeout: object = None"), True) == \
        shape(parse_params("self, *commands: str, timeout: _Timeout = None"), True)


# --- mypy on scripts that use the API

GOOD = '''
from datetime import timedelta
from pathlib import Path
from test_driver.driver import Driver
from test_driver.errors import Error, RequestedAssertionFailed
from test_driver.machine import Machine, retry
from test_driver.logger import rootlog

def check(machine: Machine, driver: Driver) -> str:
    status, out = machine.execute("uname", timeout=timedelta(seconds=5))
    machine.wait_for_unit("sshd.service", timeout=60)
    machine.wait_for_console_text(r"login:")
    lines: str = machine.succeed("a", "b", timeout=None)
    with driver.subtest("x"), rootlog.nested("y"):
        pass
    @driver.polling_condition(seconds_interval=1)
    def ok() -> None:
        machine.succeed("true")
    with ok:
        pass
    retry(lambda last: True, timeout=5)
    d: Path = machine.state_dir
    pid = machine.pid
    if pid is not None:
        pid += 1
    try:
        machine.fail("true")
    except RequestedAssertionFailed:
        pass
    except Error as e:
        return str(e)
    with Driver([], [], "", Path("/tmp")) as other:
        other.machines[0].shutdown()
    return lines + out + str(status)
'''

BAD = '''
from test_driver.machine import Machine

def check(machine: Machine) -> None:
    machine.succeed(42)
    machine.wait_until_succeeds("true", timeout="soon")
    machine.no_such_method()
    x: int = machine.succeed("true")
'''


def mypy(tmp_path, source):
    path = tmp_path / "script.py"
    path.write_text(source)
    env = dict(os.environ, MYPYPATH=str(PACKAGE_DIR.parent))
    return subprocess.run(["/usr/bin/python3", "-m", "mypy", "--strict", "--no-error-summary",
                           "--cache-dir", str(tmp_path / "cache"), str(path)],
                          env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)


def test_mypy_accepts_a_correct_script(tmp_path):
    r = mypy(tmp_path, GOOD)
    assert r.returncode == 0, r.stdout


def test_mypy_rejects_a_wrong_script(tmp_path):
    r = mypy(tmp_path, BAD)
    assert r.returncode == 1
    errors = [l for l in r.stdout.splitlines() if ": error:" in l]
    assert [int(l.split(":")[1]) for l in errors] == [5, 6, 7, 8], r.stdout


# --- docs/api.md is generated from the docstrings and must be current

def test_api_reference_is_up_to_date():
    from conftest import SOURCE_DIR
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    r = subprocess.run(["/usr/bin/python3", str(SOURCE_DIR / "docs" / "gen_api.py"), "--check"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout
