"""benchmarks/charlstm.py's pieces on a tiny model and a small slice of the tiny
Shakespeare text: the data, the PyTorch copy of the model, the epochs cut in parts, and
zeronn's and PyTorch's losses agreeing step by step from the same weights on the same
batches. Nothing here is timed, and the quality claim (validation loss after a real
budget) lives in the benchmark itself.

The text is read from ``../shared/data/tinyshakespeare.txt`` beside the repository;
these tests skip when it is absent (nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import load_benchmark

TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
pytestmark = pytest.mark.skipif(not TEXT.exists(), reason=f"no text at {TEXT} (the tiny "
                                "Shakespeare corpus beside the repository; never downloaded)")

charlstm = load_benchmark("charlstm")
TINY = charlstm.Config(steps=16, embed=8, units=16, batch=8, epochs=2, chars=3000,
                       val_chars=600, lr=3e-3, clip=1.0, parts=3, sample=30)
# The first steps' losses of the two libraries, from the same weights on the same batches:
# float32 sums in different orders (BLAS, oneDNN's LSTM) differ in the last bits, and Adam
# carries the differences on; after 8 steps they stay far inside this.
STEP_RTOL = 1e-5


def test_the_benchmark_reads_the_text_the_tests_read():
    assert charlstm.TEXT.resolve() == TEXT.resolve()


def test_data_are_whole_batches_of_windows_and_their_next_characters():
    data = charlstm.load(TEXT, TINY)
    assert len(data.vocab) == 65
    assert data.x.shape[1] == 16 and len(data.x) % TINY.batch == 0
    np.testing.assert_array_equal(data.x[:, 1:], data.y[:, :-1])  # exact: token ids
    assert data.xv.shape[1] == 16 and len(data.xv) == (600 - 17) // 16 + 1


def test_parts_cut_an_epoch_into_consecutive_whole_batches():
    order = np.random.default_rng(0).permutation(10 * TINY.batch)
    pieces = charlstm.parts(order, TINY)
    assert len(pieces) == TINY.parts
    assert all(len(p) % TINY.batch == 0 for p in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), order)


def test_torch_starts_from_zeronns_weights_and_computes_the_same_loss():
    torch = pytest.importorskip("torch", reason="PyTorch is the benchmark's peer")
    data = charlstm.load(TEXT, TINY)
    net = charlstm.build_zeronn(len(data.vocab), TINY)
    tt = charlstm.TorchTrainer(net, data, TINY)
    with torch.no_grad():
        logits = tt.model(torch.from_numpy(np.array(data.xv[:4]))).numpy()
    probs = net.predict(data.xv[:4])
    e = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    zt = charlstm.ZeronnTrainer(net, data, TINY)
    assert zt.val_loss(data.xv, data.yv) == pytest.approx(tt.val_loss(data.xv, data.yv),
                                                          rel=1e-6)


def test_the_first_steps_losses_agree_with_torch():
    pytest.importorskip("torch", reason="PyTorch is the benchmark's peer")
    data = charlstm.load(TEXT, TINY)
    net = charlstm.build_zeronn(len(data.vocab), TINY)
    zt, tt = charlstm.ZeronnTrainer(net, data, TINY), charlstm.TorchTrainer(net, data, TINY)
    order = charlstm.epoch_orders(len(data.x), TINY)[0]
    b = TINY.batch
    batches = [(data.x[order[s:s + b]], data.y[order[s:s + b]]) for s in range(0, 8 * b, b)]
    ours, theirs = zt.steps(batches), tt.steps(batches)
    np.testing.assert_allclose(ours, theirs, rtol=STEP_RTOL)
    assert ours[-1] < ours[0]


def test_a_tiny_run_end_to_end_reports_both_libraries():
    pytest.importorskip("torch", reason="PyTorch is the benchmark's peer")
    lines: list[str] = []
    res = charlstm.run(TINY, TEXT, threads=1, log=lines.append)
    assert len(lines) == TINY.epochs
    assert len(res["turns"]["zeronn"]) == TINY.epochs * TINY.parts
    for name in ("zeronn", "torch"):
        assert res["val_after"][name] < res["val_before"][name]
    assert abs(res["val_diff"]) <= charlstm.LOSS_TOLERANCE
    np.testing.assert_allclose(res["losses"]["zeronn"], res["losses"]["torch"], rtol=1e-4)
    assert res["sample_after"].startswith(TINY.prompt)
    text = "\n".join(charlstm.report(res))
    assert "validation loss per character" in text and "zeronn / torch median" in text
    if "numpy" in res["turns"]:  # numba installed: a copy trained on NumPy alone too
        assert len(res["turns"]["numpy"]) == TINY.epochs * TINY.parts
        np.testing.assert_allclose(res["losses"]["numpy"], res["losses"]["zeronn"], rtol=1e-4)
        assert "zeronn on NumPy alone" in text
