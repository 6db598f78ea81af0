"""The one-way architecture, checked on the source: no module imports another's private
names, and the rule modules import only what lies below them. And one rule of the test
suite: no test compares with numbers stored in the repository bit for bit."""

from __future__ import annotations

import ast
import textwrap
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


# -- no bit-exact comparison with stored numbers ---------------------------------------------
# The last bit of a float depends on the CPU (OpenBLAS's kernel, NumPy's SIMD exp/tanh): a
# number stored on one machine (tests/data) cannot be asked to come back bit for bit on
# another. The check follows, inside each test file, what is loaded from a path that names
# a "data" folder (np.load, zn.load, read_csv, ...) and what is computed from it: a model's
# methods, numpy functions of it, names bound to either. Comparing such a value with
# ``==``, ``!=``, ``array_equal`` or ``assert_array_equal`` fails the check, unless the
# comparison's lines say ``# exact: <why>`` (labels, integers: no rounding in them).
TESTS = Path(__file__).resolve().parent
EXACT_CALLS = {"array_equal", "assert_array_equal", "assert_equal", "array_equiv"}
LOADERS = {"load", "loadtxt", "genfromtxt", "fromfile", "read_csv", "read_parquet", "open_table"}
METADATA = {"dtype", "shape", "ndim", "size", "classes_", "history", "optimizer"}


def _mentions_data(node: ast.AST, data_names: set[str]) -> bool:
    """True if ``node`` holds a string naming a data folder or a name bound to such a path."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and (
                sub.value == "data" or "tests/data" in sub.value):
            return True
        if isinstance(sub, ast.Name) and sub.id in data_names:
            return True
    return False


def _call_name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


class _Stored:
    """Which expressions of one scope (a test function, or the module) carry stored numbers."""

    def __init__(self, scope: ast.AST, data: set[str]) -> None:
        self.data = data
        self.names: set[str] = set()
        assigns = [n for n in _walk(scope) if isinstance(n, (ast.Assign, ast.AnnAssign))]
        while True:  # names bound to stored values, to a fixed point
            new = {t.id for a in assigns if a.value is not None and self.tainted(a.value)
                   for t in (a.targets if isinstance(a, ast.Assign) else [a.target])
                   for t in ast.walk(t) if isinstance(t, ast.Name)} - self.names
            if not new:
                break
            self.names |= new

    def tainted(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.names
        if isinstance(node, ast.Attribute):
            return node.attr not in METADATA and self.tainted(node.value)
        if isinstance(node, ast.Subscript):
            return self.tainted(node.value)
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            args = [*node.args, *(k.value for k in node.keywords)]
            if name in LOADERS and any(_mentions_data(a, self.data) for a in args):
                return True
            if isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and owner.id in ("np", "numpy"):
                    return any(self.tainted(a) for a in args)  # np.asarray(stored), ...
                return self.tainted(owner)  # stored.predict(X), stored.astype(...)
            return False
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            return any(self.tainted(c) for c in ast.iter_child_nodes(node)
                       if isinstance(c, ast.expr))
        return False


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _walk(scope: ast.AST) -> list[ast.AST]:
    """The nodes of ``scope``; the module's own scope leaves its functions out (each is
    its own scope: a name such as ``back`` means different things in different tests)."""
    if not isinstance(scope, ast.Module):
        return list(ast.walk(scope))
    out: list[ast.AST] = []
    todo: list[ast.AST] = [n for n in scope.body if not isinstance(n, FUNCTIONS)]
    while todo:
        node = todo.pop()
        out.append(node)
        todo += [c for c in ast.iter_child_nodes(node) if not isinstance(c, FUNCTIONS)]
    return out


def exact_stored_comparisons(source: str) -> list[int]:
    """Line numbers of the comparisons in ``source`` that ask stored numbers for their bits."""
    tree = ast.parse(source)
    lines = source.splitlines()
    # module-level names bound to a path in a data folder (V01 = ... / "data" / "v0_1")
    data = {t.id for node in tree.body if isinstance(node, ast.Assign)
            and _mentions_data(node.value, set()) for t in node.targets
            if isinstance(t, ast.Name)}
    scopes: list[ast.AST] = [tree, *(n for n in tree.body if isinstance(n, FUNCTIONS))]
    found = []
    for scope in scopes:
        found += _exact_in(scope, _Stored(scope, data), lines)
    return sorted(set(found))


def _exact_in(scope: ast.AST, stored: _Stored, lines: list[str]) -> list[int]:
    found = []
    for node in _walk(scope):
        if isinstance(node, ast.Call) and _call_name(node.func) in EXACT_CALLS:
            operands = list(node.args)
        elif isinstance(node, ast.Compare) and any(isinstance(o, (ast.Eq, ast.NotEq))
                                                   for o in node.ops):
            operands = [node.left, *node.comparators]
        else:
            continue
        if any(stored.tainted(o) for o in operands):
            end = node.end_lineno or node.lineno
            if not any("# exact:" in line for line in lines[node.lineno - 1:end]):
                found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", sorted(TESTS.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(TESTS)))
def test_no_bit_exact_comparison_with_stored_numbers(path):
    lines = exact_stored_comparisons(path.read_text(encoding="utf-8"))
    assert not lines, (f"{path.name} lines {lines} compare stored numbers bit for bit: "
                       "use a tolerance in epsilons (or mark '# exact: <why>')")


PLANTED = textwrap.dedent("""\
    V01 = Path(__file__).parent / "data" / "v0_1"

    def test_bits(tmp_path):
        net = zn.load(V01 / "mlp.zeronn")
        expected = np.load(V01 / "pred.npy")
        out = net.predict(np.load(V01 / "X.npy"))
        np.testing.assert_array_equal(out, expected)                     # 7: both stored
        assert np.array_equal(np.asarray(net.predict(X)), expected)      # 8
        assert (out == np.load(str(V01) + "/p.npy")).all()               # 9
        assert out.dtype == expected.dtype and out.shape == (40, 1)      # metadata: fine
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)    # a tolerance: fine
        assert_array_equal(net.predict(X).argmax(1), labels)  # exact: labels, far from ties
        zn.save(other, tmp_path / "m.zeronn")
        back = zn.load(tmp_path / "m.zeronn")                            # a round trip
        assert np.array_equal(back.predict(X), other.predict(X))         # same machine: fine
        y = np.loadtxt("tests/data/y.txt")
        assert y[0] == 1.5                                               # 17
""")


def test_the_stored_numbers_check_catches_a_planted_example():
    assert exact_stored_comparisons(PLANTED) == [7, 8, 9, 17]
    fixed = PLANTED.replace("np.testing.assert_array_equal(out, expected)", "pass")
    assert exact_stored_comparisons(fixed) == [8, 9, 17]
