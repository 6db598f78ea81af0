"""zeronn._fast (the package): ``available`` follows ``ZERONN_NO_FAST``, and ``numpy_only``
switches the kernels off for a block and leaves the variable as it found it."""

from __future__ import annotations

import os
from typing import Any

import pytest

from zeronn._fast import available, numpy_only


@pytest.mark.parametrize("before", [None, "0", "1"])
def test_numpy_only_switches_the_kernels_off_and_restores_the_variable(
        monkeypatch: Any, before: str | None) -> None:
    if before is None:
        monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    else:
        monkeypatch.setenv("ZERONN_NO_FAST", before)
    with numpy_only():
        assert not available()
    assert os.environ.get("ZERONN_NO_FAST") == before
    with pytest.raises(RuntimeError), numpy_only():  # restored on an error too
        raise RuntimeError
    assert os.environ.get("ZERONN_NO_FAST") == before
