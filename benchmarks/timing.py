"""What the side-by-side benchmarks share: the BLAS line of their reports, and named
steps timed in interleaved rounds.

Imports neither NumPy nor PyTorch, so a script may import it before it pins its thread
counts in the environment (which must happen before NumPy is first imported).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def blas_description() -> str:
    """NumPy's BLAS: library, version, kernel and threads (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            parts.append(f"{info.get('internal_api')} {info.get('version')} "
                         f"({info.get('architecture')} kernel, "
                         f"{info.get('num_threads')} threads)")
    return ", ".join(parts) or "unknown"


def interleaved(steps: dict[str, Callable[[], Any]], rounds: int, reps: int,
                warm_up: int) -> dict[str, list[float]]:
    """Seconds per call of each step, one entry per round: ``warm_up`` calls of each
    first, then ``rounds`` rounds in which the steps take turns, ``reps`` calls each, so
    that a burst of load on a shared machine slows all of them alike."""
    for step in steps.values():
        for _ in range(warm_up):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(reps):
                step()
            times[name].append((time.perf_counter() - start) / reps)
    return times
