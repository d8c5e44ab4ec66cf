"""docs/architecture.md stays a true picture of the tree: it names every
header of the core, every binding file and every module of the package, and
names nothing that is gone. Each header says at its top what its one concept
is; each source file belongs to a header; each unit test to a source file.
"""
import os
import re
from pathlib import Path

ROOT = Path(os.environ.get("TD_SOURCE_DIR", Path(__file__).resolve().parents[2]))
DOC = (ROOT / "docs" / "architecture.md").read_text()
HEADERS = sorted(p.name for p in (ROOT / "include" / "test_driver").glob("*.h"))


def named_in_doc(pattern):
    return set(re.findall(pattern, DOC))


def test_the_doc_names_every_header_and_no_other():
    named = named_in_doc(r"\b([a-z0-9_]+\.h)\b") - {p.name for p in (ROOT / "bindings").glob("*.h")}
    assert set(HEADERS) - named == set(), "headers missing from docs/architecture.md"
    assert named - set(HEADERS) == set(), "docs/architecture.md names headers that do not exist"


def test_the_doc_names_every_binding_file_and_package_module():
    bindings = {p.name for p in (ROOT / "bindings").iterdir() if p.suffix in (".cc", ".h")}
    modules = {p.name for p in (ROOT / "python" / "test_driver").glob("*.py")}
    named = named_in_doc(r"\b([a-z0-9_]+\.(?:cc|h|py))\b")
    assert bindings - named == set(), "binding files missing from docs/architecture.md"
    assert modules - named == set(), "package modules missing from docs/architecture.md"


def test_every_header_says_what_it_is_first():
    for name in HEADERS:
        text = (ROOT / "include" / "test_driver" / name).read_text()
        head = text.split("#pragma once")[0].strip().splitlines()
        assert head and all(line.startswith("//") for line in head), f"{name} does not start with a comment"
        assert len(" ".join(head)) > 40, f"{name}: the comment at its top says too little"


def test_every_source_belongs_to_a_header_and_every_unit_test_to_a_source():
    stems = [h[:-2] for h in HEADERS]
    for source in (ROOT / "src").glob("*.cc"):
        stem = source.stem
        assert any(stem == s or stem.startswith(s + "_") for s in stems), f"src/{source.name} has no header"
    for test in (ROOT / "tests" / "unit").glob("*_test.cc"):
        assert (ROOT / "src" / (test.stem[: -len("_test")] + ".cc")).exists(), f"{test.name} tests no source file"
