"""Compiled kernel of the embedding's scatter: rows summed by token id.

``zeronn.layers.embedding.sum_rows_by_id`` (an Embedding's backward, and a recurrent
layer's fused input projection) sums the rows of a gradient by the id at each position.
NumPy does it by a stable sort of the ids and one ``np.add.reduceat`` over the sorted
rows: the sorted copy of the rows is the cost (4.4 ms for 2,048 rows of 512 float32 values
on one core). :func:`sum_rows_by_id` adds each row into its id's row in one pass (0.1 ms
there), in the order of the positions; ``reduceat`` groups its additions otherwise, so the
two agree to rounding. Importing this module does not import numba.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from numpy.typing import NDArray

__all__ = ["kernels"]


def sum_rows_by_id(ids: NDArray, rows: NDArray, out: NDArray) -> None:
    """``out[v] = sum of rows[i] over the i with ids[i] == v`` (0 where no id is v);
    ids (m,) integers in [0, len(out)), rows (m, k), out (V, k) overwritten."""
    vocab, k = out.shape
    for v in range(vocab):
        row = out[v]
        for j in range(k):
            row[j] = 0
    for i in range(ids.shape[0]):
        row, add = out[ids[i]], rows[i]
        for j in range(k):
            row[j] += add[j]


_NAMES = ("sum_rows_by_id",)
_KERNELS: Any = None


def kernels() -> Any:
    """The compiled kernels, by name (numba imported here; each compiles for a dtype on
    its first call, then comes from numba's on-disk cache)."""
    global _KERNELS
    if _KERNELS is None:
        from zeronn._fast import jit

        _KERNELS = SimpleNamespace(**{name: jit(globals()[name]) for name in _NAMES})
    return _KERNELS
