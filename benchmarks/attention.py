"""One attention layer's training step (forward and backward) against PyTorch eager.

    python benchmarks/attention.py [--threads 1] [--rounds 40] [--reps 10]

nanoGPT's shapes for a character-level model: n=12 sequences of T=64 steps, C=128
features, 4 heads, float32. zeronn's ``MultiHeadAttention(4, causal=True)`` against
nanoGPT's ``CausalSelfAttention`` in torch (its weights copied), both with the attention
written out (``q @ k^T``, mask, softmax, ``att @ v``) and with torch's fused
``F.scaled_dot_product_attention`` (nanoGPT's path on torch >= 2). Each round times
``reps`` steps of each in turn (interleaved, so a busy neighbour slows both alike); the
median of the rounds' ratios is printed with their range. BLAS and torch get the same
number of threads (set before NumPy is imported).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved  # beside this file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    args = p.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    import zeronn as zn

    torch.set_num_threads(args.threads)
    n, t, c, h = args.n, args.steps, args.width, args.heads
    net = zn.Sequential([zn.MultiHeadAttention(h, causal=True)], input_shape=(t, c),
                        dtype="float32", seed=0)
    layer = net.layers[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, t, c)).astype(np.float32)
    g = rng.standard_normal((n, t, c)).astype(np.float32)
    gbuf = np.empty_like(g)

    class CausalSelfAttention(torch.nn.Module):  # nanoGPT's model.py, without dropout
        def __init__(self, flash: bool) -> None:
            super().__init__()
            self.flash = flash
            self.c_attn = torch.nn.Linear(c, 3 * c)
            self.c_proj = torch.nn.Linear(c, c)
            with torch.no_grad():
                self.c_attn.weight.copy_(torch.tensor(layer.W_qkv.T))
                self.c_proj.weight.copy_(torch.tensor(layer.W_out.T))
            self.register_buffer("bias", torch.tril(torch.ones(t, t)).view(1, 1, t, t))

        def forward(self, x: Any) -> Any:
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(C, dim=2)
            k = k.view(B, T, h, C // h).transpose(1, 2)
            q = q.view(B, T, h, C // h).transpose(1, 2)
            v = v.view(B, T, h, C // h).transpose(1, 2)
            if self.flash:
                y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
                att = torch.nn.functional.softmax(att, dim=-1)
                y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(g)

    def zeronn_step() -> None:
        layer.forward(x, training=True)
        np.copyto(gbuf, g)  # backward may overwrite its input
        layer.backward(gbuf)

    def torch_step(module: Any) -> Any:
        def step() -> None:
            xt.grad = None
            for prm in module.parameters():
                prm.grad = None
            module(xt).backward(gt)
        return step

    steps = {"zeronn": zeronn_step, "torch eager": torch_step(CausalSelfAttention(False)),
             "torch sdpa": torch_step(CausalSelfAttention(True))}
    # A warm-up first: buffers, thread pools.
    times = interleaved(steps, args.rounds, args.reps, warm_up=3)
    print(f"n={n} T={t} C={c} heads={h} float32, {args.threads} thread(s), "
          f"{args.rounds} rounds of {args.reps} steps; numpy {np.__version__}, "
          f"torch {torch.__version__}, python {sys.version.split()[0]}")
    for name, ts in times.items():
        print(f"  {name:<12} median {statistics.median(ts) * 1e3:7.3f} ms/step "
              f"(min {min(ts) * 1e3:.3f})")
    for peer in ("torch eager", "torch sdpa"):
        ratios = [a / b for a, b in zip(times["zeronn"], times[peer])]
        print(f"  zeronn / {peer}: median {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
