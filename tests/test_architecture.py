"""The one-way architecture, checked on the source: no module imports another's private
names, and the rule modules import only what lies below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import zeronn

SRC = Path(zeronn.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))


def _zeronn_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``from zeronn... import name`` in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zeronn"):
            out += [(node.module or "", a.name) for a in node.names]
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_names_imported_from_other_modules(path):
    private = [f"{m}.{n}" for m, n in _zeronn_imports(path)
               if n.startswith("_") and not n.startswith("__")]
    assert not private, f"{path.name} imports private names {private}"


@pytest.mark.parametrize(("module", "allowed"), [
    ("_registry.py", set()),
    ("_atomic.py", set()),
    ("_version.py", set()),
    ("_validation.py", set()),
    ("schedules.py", {"zeronn._registry", "zeronn._validation"}),
    ("tasks.py", {"zeronn._validation", "zeronn.activations", "zeronn.losses"}),
    ("text.py", {"zeronn._validation", "zeronn._registry", "zeronn._atomic"}),
])
def test_low_modules_import_only_lower_ones(module, allowed):
    used = {m for m, _ in _zeronn_imports(SRC / module)}
    assert used <= allowed, f"{module} imports {sorted(used - allowed)}"
