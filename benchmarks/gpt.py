"""nanoGPT's character-level GPT step: zeronn beside PyTorch eager on the same threads.

``torch_gpt`` is nanoGPT's ``model.py`` written as the zeronn model ``zn.gpt`` is built
(tanh GELU, LayerNorm with its bias; lm_head tied to wte as in nanoGPT), so the same weights copy
across (``copy_weights``): the parity suite proves the two equal, and this script times
one training step of each (forward, backward, gradient clipping, AdamW) on the same
random batches, in interleaved rounds::

    python benchmarks/gpt.py [--rounds 20] [--threads 2] [--dtype float32]

It prints the median time per step of each, their ratio (zeronn / torch) with its range
over rounds, the BLAS library, kernel and thread count. PyTorch is the ``parity`` extra.

Instead of timing, two reference runs of nanoGPT's 2000 steps on a text file::

    python benchmarks/gpt.py --train TEXT --seed S --threads 1            # (a)
    python benchmarks/gpt.py --train TEXT --seed S --threads 1 --nanogpt  # (b)

(a) trains ``torch_gpt`` from the weights and on the batches of
``examples/gpt_shakespeare.py --seed S`` (it prints the same losses as that run, to
float32 rounding); (b) is nanoGPT as it runs itself: its defaults (erf GELU, no biases at
all), its initialisation and every batch from torch's generator, so its spread over seeds
is what the recipe gives on this machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import zeronn as zn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import blas_description  # beside this file

# nanoGPT's CPU run: --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
CONFIG = {"block_size": 64, "batch_size": 12, "n_layer": 4, "n_head": 4, "n_embd": 128}
VOCAB = 65  # tiny Shakespeare's characters


def torch_gpt(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
              bias: bool = False, tie_weights: bool = True, gelu: str = "tanh",
              ln_bias: bool = True) -> Any:
    """nanoGPT's GPT (dropout 0) as zn.gpt builds it, in PyTorch."""
    import torch
    from torch import nn

    class Attention(nn.Module):  # nanoGPT's CausalSelfAttention
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
            self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

        def forward(self, x: Any) -> Any:
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            q, k, v = (a.view(B, T, n_head, C // n_head).transpose(1, 2) for a in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            mask = torch.ones(T, T, dtype=torch.bool).triu(1)
            att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1, self.attn = nn.LayerNorm(n_embd, bias=ln_bias), Attention()
            self.ln_2 = nn.LayerNorm(n_embd, bias=ln_bias)
            self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
            self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
            self.gelu = nn.GELU(approximate=gelu)  # "tanh": zeronn's; "none": nanoGPT's erf

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd, bias=ln_bias)
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            if tie_weights:  # nanoGPT: self.transformer.wte.weight = self.lm_head.weight
                self.wte.weight = self.lm_head.weight

        def forward(self, idx: Any) -> Any:
            pos = torch.arange(idx.size(1))
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))  # logits (B, T, vocab)

    return GPT()


def parameter_map(net: zn.Sequential) -> dict[str, tuple[Any, str, bool]]:
    """torch_gpt's parameter names -> (zeronn layer, parameter name, transposed?).

    Dense and attention matrices are (fan_in, fan_out) in zeronn, torch's weight.T.
    """
    layers = net.layers
    out: dict[str, tuple[Any, str, bool]] = {
        "wte.weight": (layers[0], "W", False), "wpe.weight": (layers[1], "W", False)}
    for i in range((len(layers) - 4) // 2):
        attn, mlp = layers[2 + 2 * i], layers[3 + 2 * i]
        ln1, mha = attn.layers[0], attn.layers[1]
        ln2, fc, proj = mlp.layers[0], mlp.layers[1], mlp.layers[2]
        entries = {"ln_1.weight": (ln1, "gamma", False), "ln_1.bias": (ln1, "beta", False),
                   "attn.c_attn.weight": (mha, "W_qkv", True),
                   "attn.c_proj.weight": (mha, "W_out", True),
                   "ln_2.weight": (ln2, "gamma", False), "ln_2.bias": (ln2, "beta", False),
                   "c_fc.weight": (fc, "W", True), "c_proj.weight": (proj, "W", True)}
        if mha.use_bias:
            entries |= {"attn.c_attn.bias": (mha, "b_qkv", False),
                        "attn.c_proj.bias": (mha, "b_out", False),
                        "c_fc.bias": (fc, "b", False), "c_proj.bias": (proj, "b", False)}
        out |= {f"h.{i}.{k}": v for k, v in entries.items()}
    ln_f, head = layers[-2], layers[-1]
    out |= {"ln_f.weight": (ln_f, "gamma", False), "ln_f.bias": (ln_f, "beta", False)}
    if not isinstance(head, zn.TiedDense):  # tied: torch lists the shared matrix once (wte)
        out["lm_head.weight"] = (head, "W", True)
    return out


def in_torch_layout(value: np.ndarray, transposed: bool, shape: tuple[int, ...]) -> np.ndarray:
    return value.T if transposed else value.reshape(shape)


def copy_weights(net: zn.Sequential, model: Any) -> None:
    """zn.gpt's weights into ``torch_gpt``'s parameters."""
    import torch

    names = parameter_map(net)
    with torch.no_grad():
        for name, param in model.named_parameters():
            layer, pname, transposed = names[name]
            value = in_torch_layout(getattr(layer, pname), transposed, tuple(param.shape))
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def zeronn_grads(net: zn.Sequential, model: Any) -> dict[str, np.ndarray]:
    """zeronn's last gradients, by torch parameter name, in torch's layout."""
    names = parameter_map(net)
    out = {}
    for name, param in model.named_parameters():
        layer, pname, transposed = names[name]
        out[name] = in_torch_layout(getattr(layer, "d" + pname), transposed,
                                    tuple(param.shape))
    return out


class TorchTrainer:
    """nanoGPT's training step in PyTorch: AdamW (betas (0.9, 0.99), weight decay 0.1 on
    the parameters of 2+ dimensions only), the schedule's lr for step ``t``, the mean
    cross-entropy of the logits, gradient clipping at 1.0: ``zn.Trainer``'s counterpart."""

    def __init__(self, model: Any, lr: float, schedule: zn.optim.Schedule) -> None:
        import torch

        self.torch, self.model, self.lr, self.schedule, self.t = torch, model, lr, schedule, 0
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                      {"params": rest, "weight_decay": 0.0}], lr=lr,
                                     betas=(0.9, 0.99))

    def loss(self, x: np.ndarray, y: np.ndarray) -> Any:
        """The mean cross-entropy of the model's logits for (x, y) (a tensor)."""
        logits = self.model(self.torch.from_numpy(x))
        return self.torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                                      self.torch.from_numpy(y).reshape(-1))

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.schedule.lr(self.t, self.lr)
        loss = self.loss(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.t += 1
        return float(loss.item())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> float:
        with self.torch.no_grad():
            return float(self.loss(x, y).item())


def run(rounds: int = 20, steps: int = 5, threads: int = 2, dtype: str = "float32",
        seed: int = 0, printer: Any = print) -> dict[str, Any]:
    """Interleaved rounds of ``steps`` training steps each; returns the medians and ratios."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    c = CONFIG
    net = zn.gpt(VOCAB, c["block_size"], c["n_layer"], c["n_head"], c["n_embd"], dtype=dtype,
                 seed=seed)
    model = torch_gpt(VOCAB, c["block_size"], c["n_layer"], c["n_head"], c["n_embd"]).to(tdtype)
    copy_weights(net, model)
    trainer = zn.Trainer(net, loss="categorical_crossentropy",
                         optimizer=zn.optim.AdamW(1e-3, betas=(0.9, 0.99), weight_decay=0.1,
                                                  decay="weights"),
                         lr_schedule=zn.optim.WarmupCosine(100, 2000, min_lr=1e-4),
                         clip_grad_norm=1.0)
    torch_trainer = TorchTrainer(model, 1e-3, zn.optim.WarmupCosine(100, 2000, min_lr=1e-4))
    torch_step = torch_trainer.step
    rng = np.random.default_rng(seed)
    data = rng.integers(0, VOCAB, 100_000)

    def batch() -> tuple[np.ndarray, np.ndarray]:
        return zn.text.random_blocks(data, c["block_size"], c["batch_size"], rng)

    times: dict[str, list[float]] = {"zeronn": [], "torch": []}
    with threadpool_limits(limits=threads):
        for _ in range(2):  # warm-up: buffers, first-call costs
            x, y = batch()
            trainer.step(x, y)
            torch_step(x, y)
        for r in range(rounds):
            xs = [batch() for _ in range(steps)]
            order = (("zeronn", trainer.step), ("torch", torch_step))
            for name, step in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                for x, y in xs:
                    step(x, y)
                times[name].append((time.perf_counter() - t0) / steps)
        kernel = blas_description()
    ratios = [a / b for a, b in zip(times["zeronn"], times["torch"])]
    result = {
        "zeronn_ms": 1000 * statistics.median(times["zeronn"]),
        "torch_ms": 1000 * statistics.median(times["torch"]),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "threads": threads, "blas": kernel, "dtype": dtype, "rounds": rounds, "steps": steps,
    }
    printer(f"gpt step ({dtype}, {threads} threads, {kernel}): zeronn "
            f"{result['zeronn_ms']:.1f} ms, torch {result['torch_ms']:.1f} ms, ratio "
            f"{result['ratio']:.2f} (range {result['ratio_min']:.2f}-{result['ratio_max']:.2f} "
            f"over {rounds} interleaved rounds of {steps} steps)")
    return result


def train_loop(trainer: TorchTrainer, train: np.ndarray, val: np.ndarray,
               draw: Any, iters: int = 2000, eval_interval: int = 250, eval_iters: int = 20,
               final_eval_iters: int = 200, label: str = "torch",
               printer: Any = print) -> dict[str, float]:
    """nanoGPT's loop: ``iters`` steps on ``draw(train, "train")`` batches, the mean loss of
    ``eval_iters`` ``draw(split, "eval")`` batches of each split every ``eval_interval``
    steps and at the end, then ``final_eval_iters`` batches of val (a steadier number)."""
    t0 = time.perf_counter()
    result: dict[str, float] = {}

    def estimate(data: np.ndarray, k: int) -> float:
        return float(np.mean([trainer.evaluate(*draw(data, "eval")) for _ in range(k)]))

    for it in range(iters + 1):
        if it % eval_interval == 0 or it == iters:
            result = {"train": estimate(train, eval_iters), "val": estimate(val, eval_iters)}
            printer(f"{label} step {it}: train loss {result['train']:.4f}, val loss "
                    f"{result['val']:.4f} ({time.perf_counter() - t0:.0f} s)")
        if it == iters:
            break
        trainer.step(*draw(train, "train"))
    if final_eval_iters:
        result["val_steady"] = estimate(val, final_eval_iters)
        printer(f"{label} val loss over {final_eval_iters} batches: {result['val_steady']:.4f}")
    return result


def splits(text_path: Any) -> tuple[int, np.ndarray, np.ndarray]:
    """The vocabulary size and nanoGPT's 90/10 split of the text's character ids."""
    text = zn.text.load_text(text_path)
    vocab = zn.text.CharVocab.from_text(text)
    train, val = zn.text.split(vocab.encode(text), 0.9)
    return len(vocab), train, val


def train_torch(text_path: Any, seed: int = 1337, iters: int = 2000, warmup: int = 100,
                tie_weights: bool = True, gelu: str = "tanh", ln_bias: bool = True,
                printer: Any = print,
                **loop: Any) -> dict[str, float]:
    """nanoGPT's CPU run with the PyTorch model, on exactly the batches and from exactly
    the weights that ``examples/gpt_shakespeare.py --seed SEED`` uses (the same
    generators, draws and initial zn.gpt weights): the side-by-side reference run."""
    c = CONFIG
    vocab_size, train, val = splits(text_path)
    net = zn.gpt(vocab_size, c["block_size"], c["n_layer"], c["n_head"], c["n_embd"],
                 tie_weights=tie_weights, dtype="float32", seed=seed)
    model = torch_gpt(vocab_size, c["block_size"], c["n_layer"], c["n_head"], c["n_embd"],
                      tie_weights=tie_weights, gelu=gelu, ln_bias=ln_bias)
    copy_weights(net, model)
    trainer = TorchTrainer(model, 1e-3, zn.optim.WarmupCosine(warmup, iters, min_lr=1e-4))
    rngs = {"train": np.random.default_rng(seed), "eval": np.random.default_rng(seed + 1)}

    def draw(data: np.ndarray, use: str) -> tuple[np.ndarray, np.ndarray]:
        return zn.text.random_blocks(data, c["block_size"], c["batch_size"], rngs[use])

    return train_loop(trainer, train, val, draw, iters, printer=printer, **loop)


def nanogpt_init(model: Any, n_layer: int) -> None:
    """nanoGPT's ``_init_weights`` from torch's generator: Linear and Embedding weights
    N(0, 0.02^2), biases 0, then every ``c_proj.weight`` N(0, (0.02 / sqrt(2 n_layer))^2)."""
    import torch

    def init_weights(module: Any) -> None:
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                torch.nn.init.zeros_(bias)

    model.apply(init_weights)  # as nanoGPT: its order of draws from the generator
    for name, param in model.named_parameters():
        if name.endswith("c_proj.weight"):
            torch.nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


def train_nanogpt(text_path: Any, seed: int = 1337, iters: int = 2000, warmup: int = 100,
                  printer: Any = print, **loop: Any) -> dict[str, float]:
    """nanoGPT's CPU run as nanoGPT itself runs it, with nothing of zeronn's but the
    text's split: its defaults (erf GELU, no biases, LayerNorm without its bias, lm_head
    tied), its initialisation and every batch (training and evaluation alike) drawn by
    torch's generator seeded with ``seed`` (``torch.randint``, as its ``get_batch``).
    The reference for what the recipe gives on this machine, seed to seed."""
    import torch

    c = CONFIG
    vocab_size, train, val = splits(text_path)
    torch.manual_seed(seed)
    model = torch_gpt(vocab_size, c["block_size"], c["n_layer"], c["n_head"], c["n_embd"],
                      gelu="none", ln_bias=False)
    nanogpt_init(model, c["n_layer"])
    trainer = TorchTrainer(model, 1e-3, zn.optim.WarmupCosine(warmup, iters, min_lr=1e-4))
    block, batch = c["block_size"], c["batch_size"]

    def draw(data: np.ndarray, use: str) -> tuple[np.ndarray, np.ndarray]:
        starts = torch.randint(len(data) - block, (batch,)).numpy()
        rows = starts[:, None] + np.arange(block + 1)
        ids = data[rows].astype(np.int64)
        return ids[:, :-1], ids[:, 1:]

    return train_loop(trainer, train, val, draw, iters, label="nanoGPT", printer=printer,
                      **loop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--train", type=Path, default=None, metavar="TEXT",
                   help="instead of timing: PyTorch's whole 2000-step run on this text file, "
                        "on the batches examples/gpt_shakespeare.py --seed SEED draws")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--untied", action="store_true", help="lm_head not tied to wte")
    p.add_argument("--gelu", default="tanh", choices=("tanh", "none"),
                   help="torch's GELU approximation ('none': nanoGPT's erf form)")
    p.add_argument("--no-ln-bias", action="store_true",
                   help="LayerNorm without its bias (nanoGPT's bias=False)")
    p.add_argument("--nanogpt", action="store_true",
                   help="with --train: nanoGPT as it runs itself (its defaults, its "
                        "initialisation and batches from torch's generator), not the "
                        "zeronn model's weights and batches")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install 'zeronn[parity]'): nothing to compare",
              file=sys.stderr)
        return 1
    if args.train is not None:
        torch.set_num_threads(args.threads)
        if args.nanogpt:
            train_nanogpt(args.train, args.seed)
            return 0
        torch.manual_seed(args.seed)
        train_torch(args.train, args.seed, tie_weights=not args.untied, gelu=args.gelu,
                    ln_bias=not args.no_ln_bias)
        return 0
    run(args.rounds, args.steps, args.threads, args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
