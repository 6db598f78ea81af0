"""A whole GPT (``zn.gpt``) against the same model in PyTorch: logits, loss, every
gradient, then 20 training steps of nanoGPT's recipe (AdamW with decay on the weights
only, warm-up + cosine learning rate, gradient clipping at 1.0).

The torch model is ``benchmarks/gpt.py``'s ``torch_gpt`` (nanoGPT's ``model.py`` as zn.gpt
builds it), the weights copied from zeronn's. Compared with the parity suite's metric
(``conftest.relative_error``) to ``F64_TOL`` in float64 and ``F32_TOL`` in float32;
gradients are floored at the mean size of their summands over the batch's n*T rows, as
the layers suite does (a weight's gradient sums n*T outer products).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

import zeronn as zn  # noqa: E402
from conftest import load_benchmark  # noqa: E402

from .test_torch_gradients import F32_TOL, F64_TOL  # noqa: E402

gpt_bench = load_benchmark("gpt")
VOCAB, BLOCK = 13, 16
DTYPES = [("float64", F64_TOL), ("float32", F32_TOL)]


def _pair(dtype: str, bias: bool, seed: int = 0, tie: bool = True) -> tuple[zn.Sequential, Any]:
    net = zn.gpt(VOCAB, BLOCK, n_layer=2, n_head=2, n_embd=8, bias=bias, tie_weights=tie,
                 dtype=dtype, seed=seed)
    model = gpt_bench.torch_gpt(VOCAB, BLOCK, 2, 2, 8, bias=bias, tie_weights=tie).to(
        getattr(torch, dtype))
    gpt_bench.copy_weights(net, model)
    return net, model


def _batch(seed: int, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, (n, BLOCK)), rng.integers(0, VOCAB, (n, BLOCK))


def _torch_loss(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    logits = model(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB),
                                             torch.from_numpy(y).reshape(-1))
    return logits, loss


@pytest.mark.parametrize(("dtype", "tol"), DTYPES)
@pytest.mark.parametrize(("bias", "tie"), [(False, True), (True, True), (False, False)])
def test_gpt_logits_loss_and_gradients(parity: Any, dtype: str, tol: float, bias: bool,
                                       tie: bool) -> None:
    net, model = _pair(dtype, bias, tie=tie)
    x, y = _batch(1)
    y[0, :3] = -100  # ignored targets: both skip them
    logits, loss = _torch_loss(model, x, y)
    loss.backward()
    value, _ = net.loss_and_gradients(x, y, loss="categorical_crossentropy")
    probs = net.predict(x)
    what = f"gpt {dtype} bias={bias} tied={tie}"
    parity.check(f"gpt {dtype} probabilities", probs,
                 torch.softmax(logits, -1).detach().numpy(), tol, what)
    parity.check(f"gpt {dtype} loss", value, loss.item(), tol, what)
    grads = gpt_bench.zeronn_grads(net, model)
    rows = x.size
    for name, param in model.named_parameters():
        expected = param.grad.numpy()
        floor = float(np.abs(expected).sum()) / max(rows, 1) / expected.size
        parity.check(f"gpt {dtype} gradients", grads[name], expected, tol,
                     f"{name} of {what}", floor=floor)


@pytest.mark.parametrize(("dtype", "tol"), DTYPES)
def test_gpt_training_equals_torch(parity: Any, dtype: str, tol: float) -> None:
    """20 steps of nanoGPT's recipe: the same losses and weights after each."""
    net, model = _pair(dtype, bias=False, seed=3)
    trainer = zn.Trainer(net, loss="categorical_crossentropy",
                         optimizer=zn.optim.AdamW(1e-2, betas=(0.9, 0.99), weight_decay=0.1,
                                                  decay="weights"),
                         lr_schedule=zn.optim.WarmupCosine(5, 20, min_lr=1e-3),
                         clip_grad_norm=1.0)
    reference = gpt_bench.TorchTrainer(model, 1e-2, zn.optim.WarmupCosine(5, 20, min_lr=1e-3))
    names = gpt_bench.parameter_map(net)
    step_tol = tol  # the same tolerance as one pass: measured 2e-6 after 20 float32 steps
    for it in range(20):
        x, y = _batch(100 + it)
        expected = reference.step(x, y)
        value = trainer.step(x, y)
        parity.check(f"gpt {dtype} training loss", value, expected, step_tol, f"step {it}")
    for name, param in model.named_parameters():
        layer, pname, transposed = names[name]
        ours = gpt_bench.in_torch_layout(getattr(layer, pname), transposed, tuple(param.shape))
        parity.check(f"gpt {dtype} weights after 20 steps", ours, param.detach().numpy(),
                     step_tol, name)


def test_nanogpt_init_is_nanogpts() -> None:
    """The reference run's own initialisation: N(0, 0.02^2) weights and embeddings, the
    residual projections scaled by (2 n_layer)^-1/2, LayerNorm gains 1."""
    torch.manual_seed(0)
    model = gpt_bench.torch_gpt(65, 64, 4, 4, 128, gelu="none", ln_bias=False)
    gpt_bench.nanogpt_init(model, 4)
    for name, p in model.named_parameters():
        std = float(p.detach().std())
        if name.endswith("c_proj.weight"):
            assert std == pytest.approx(0.02 / 8 ** 0.5, rel=0.05), name
        elif name.startswith("ln") or ".ln_" in name:
            assert torch.equal(p.detach(), torch.ones_like(p)), name
        else:
            assert std == pytest.approx(0.02, rel=0.05), name
    assert model.wte.weight is model.lm_head.weight


@pytest.mark.parametrize("reference", ["train_torch", "train_nanogpt"])
def test_reference_runs_train_and_report(tmp_path: Any, reference: str) -> None:
    """Both PyTorch reference runs (zeronn's weights and batches; nanoGPT as it runs
    itself) train, evaluate and print nanoGPT's lines: three steps on a short text."""
    path = tmp_path / "text.txt"
    path.write_text("".join(np.random.default_rng(0).choice(list("abcdefgh \n"), 3000)))
    lines: list[str] = []
    torch.manual_seed(0)
    result = getattr(gpt_bench, reference)(path, seed=0, iters=3, warmup=1, eval_interval=2,
                                          eval_iters=2, final_eval_iters=2,
                                          printer=lines.append)
    assert [line.split(":")[0].split()[-1] for line in lines] == ["0", "2", "3", "batches"]
    assert set(result) == {"train", "val", "val_steady"}
    assert all(np.isfinite(v) and 0 < v < 5 for v in result.values())
