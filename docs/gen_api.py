#!/usr/bin/python3
"""Writes docs/api.md, the API reference, from the docstrings and signatures
the package carries: the bindings' (bindings/module.cc) and the Python
modules' (python/test_driver).

    PYTHONPATH=build/python /usr/bin/python3 docs/gen_api.py          # rewrite docs/api.md
    PYTHONPATH=build/python /usr/bin/python3 docs/gen_api.py --check  # exit 1 if it is out of date

tests/python/test_stubs.py runs the check, so the reference cannot drift
from the code.
"""
import argparse
import difflib
import importlib
import inspect
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "api.md"

# The package's modules in reading order, with the names each exports.
MODULES = [
    "test_driver.driver",
    "test_driver.machine",
    "test_driver.logger",
    "test_driver.polling_condition",
    "test_driver.efi",
    "test_driver.debug",
    "test_driver.vlan",
    "test_driver.errors",
    "test_driver",
]


def clean(text: str) -> str:
    """Signatures without module prefixes."""
    text = re.sub(r"\b(test_driver\.)?_core\.", "", text)
    return text


def pybind_signature(obj, name: str):
    """(signature, doc) from a pybind11 docstring `name(args) -> ret\\n\\ndoc`."""
    doc = inspect.getdoc(obj) or ""
    lines = doc.splitlines()
    sigs, rest = [], []
    for line in lines:
        m = re.match(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) -> (.*)$", line)
        if m:
            params = re.sub(r"^self(: [\w.]+)?(, )?", "", m.group(1))
            sigs.append(clean(f"{name}({params}) -> {m.group(2)}"))
        elif line.strip() != "Overloaded function.":
            rest.append(line)
    return sigs, "\n".join(rest).strip()


class Annotation(str):
    """An annotation kept as a string (the modules use `from __future__ import
    annotations`), shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def unquoted(annotation):
    return Annotation(annotation) if isinstance(annotation, str) else annotation


def python_signature(obj, name: str, method: bool = False):
    try:
        sig = inspect.signature(obj)
        params = list(sig.parameters.values())[1 if method else 0:]  # without self
        sig = sig.replace(parameters=[p.replace(annotation=unquoted(p.annotation)) for p in params],
                          return_annotation=unquoted(sig.return_annotation))
        text = str(sig)
    except (TypeError, ValueError):
        text = "(...)"
    return [clean(f"{name}{text}")], (inspect.getdoc(obj) or "").strip()


def signature(obj, name: str, method: bool = False):
    if inspect.isfunction(obj):
        return python_signature(obj, name, method)
    return pybind_signature(obj, name)


def is_core_half(base, cls) -> bool:
    """Whether `base` is the class of the core that a Python class of the same name is built on."""
    return base.__module__ == "test_driver._core" and base.__name__ == cls.__name__ and base is not cls


def own_members(cls) -> dict:
    """The class's members, with those of the core's class it is built on
    first (in the order they were defined)."""
    members = {}
    for base in cls.__bases__:
        if is_core_half(base, cls):
            members.update(own_members(base))
    members.update(vars(cls))
    return members


def doc_block(doc: str) -> list:
    return [doc, ""] if doc else []


def member_lines(cls) -> list:
    out = []
    members = own_members(cls)
    init = members.get("__init__")
    if init is not None and "No constructor defined" not in (init.__doc__ or "") and type(init).__name__ == "instancemethod":
        sigs, _ = pybind_signature(init, "__init__")
        for s in sigs:
            out.append(f"{cls.__name__}{s[len('__init__'):].rsplit(' -> ', 1)[0]}")
    elif inspect.isfunction(init):
        sigs, _ = python_signature(init, cls.__name__, method=True)
        out += [s.rsplit(" -> ", 1)[0] for s in sigs]
    properties, methods = [], []
    for attr, value in members.items():
        if attr.startswith("_") and attr not in ("__enter__", "__exit__"):
            continue
        if isinstance(value, property):
            ret = ""
            if value.fget is not None:
                m = re.search(r"-> (.*)$", (value.fget.__doc__ or "").splitlines()[0] if value.fget.__doc__ else "")
                ret = clean(m.group(1)) if m else ""
            kind = "property" if value.fset is None else "property, writable"
            doc = (value.__doc__ or "").strip()
            doc = "" if doc.startswith("(") else doc  # pybind11 puts the getter's signature there
            properties.append((attr, ret, kind, doc))
        elif isinstance(value, type):  # a nested class of constants (EfiVariable.Flags)
            consts = ", ".join(f"{k} = {v:#x}" if isinstance(v, int) else f"{k} = {v!r}"
                               for k, v in vars(value).items() if not k.startswith("_"))
            methods.append((attr, [f"class {attr}"], consts))
        elif isinstance(value, staticmethod):
            sigs, doc = signature(value.__func__, attr)
            methods.append((attr, [f"@staticmethod {s}" for s in sigs], doc))
        elif callable(value):
            sigs, doc = signature(value, attr, method=True)
            methods.append((attr, sigs, doc))
    if out:
        out = ["```python", *out, "```", ""]
    if properties:
        out.append("| property | type | |")
        out.append("| --- | --- | --- |")
        for attr, ret, kind, doc in properties:
            out.append(f"| `{attr}` | `{ret}` | {kind}{': ' + doc if doc else ''} |")
        out.append("")
    for attr, sigs, doc in methods:
        out += item(sigs, doc)
    if methods:
        out.append("")
    return out


def item(sigs, doc) -> list:
    """A list item: the signature(s), then the doc indented under it."""
    lines = [f"- `{sigs[0]}`"] + [f"  `{s}`" for s in sigs[1:]]
    if doc:
        lines[-1] += "  "  # a line break in Markdown
        lines += ["  " + l if l else "" for l in doc.splitlines()]
    return lines


def generate() -> str:
    import test_driver

    out = [
        "# API reference",
        "",
        "<!-- Generated by docs/gen_api.py from the package's docstrings; do not edit. -->",
        "",
        "The `test_driver` package as scripts and Python programs see it. Test",
        "scripts get these objects as globals (see [user-guide.md](user-guide.md));",
        "Python programs import them from the modules below. Timeouts are seconds",
        "or a `datetime.timedelta`; `object` in a signature means \"any Python value",
        "the method converts\" (see the type stubs in `test_driver/_core.pyi`).",
        "",
    ]
    seen = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", [])
        out += [f"## `{module_name}`", ""]
        out += doc_block((module.__doc__ or "").strip())
        for name in names:
            obj = getattr(module, name)
            key = id(obj)
            if key in seen:
                out += [f"- `{name}`: see `{seen[key]}`", ""]
                continue
            seen[key] = f"{module_name}.{name}"
            if inspect.isclass(obj):
                bases = [b.__name__ for b in obj.__bases__
                         if b.__name__ not in ("object", "pybind11_object") and not is_core_half(b, obj)]
                out += [f"### class `{name}`" + (f"({', '.join(bases)})" if bases else ""), ""]
                out += doc_block(inspect.cleandoc(obj.__doc__ or ""))
                out += member_lines(obj)
            elif callable(obj):
                sigs, doc = signature(obj, name)
                out += [f"### `{name}`", "", "```python", *sigs, "```", ""]
                out += doc_block(doc)
            else:
                out += [f"### `{name}`", "", f"A `{type(obj).__name__}`" +
                        (f" ({obj.__doc__.strip().splitlines()[0]})" if type(obj).__module__ != "builtins" and
                         obj.__doc__ else "") + ".", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md differs from the generated text")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       str(args.output), "generated"))
            print(f"\n{args.output} is out of date: run docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
