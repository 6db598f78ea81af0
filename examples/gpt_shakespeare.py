"""nanoGPT's CPU run on tiny Shakespeare, in zeronn: a character-level GPT from zero.

nanoGPT's README trains on a laptop CPU with::

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False
        --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4
        --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

and reaches a validation loss of about 1.88. This script is the same run: the 90/10
split of the text, random blocks of 64 characters in batches of 12, a 4-layer GPT of
width 128 with 4 heads, AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the
weights only), 100 warm-up steps then a cosine decay to 1e-4 at step 2000, gradient
clipping at 1.0, and the loss of each split estimated every 250 steps on 20 random
batches; then it prints samples. Every forward and backward pass is zeronn's own NumPy::

    python examples/gpt_shakespeare.py                       # ../shared/data/tinyshakespeare.txt
    python examples/gpt_shakespeare.py --data my_text.txt --iters 500

Nothing is downloaded: give any plain-text file with ``--data``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import zeronn as zn

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared/data/tinyshakespeare.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="nanoGPT's character-level Shakespeare run, in zeronn")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a plain-text file")
    p.add_argument("--iters", type=int, default=2000, help="training steps (max_iters)")
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20, help="batches per loss estimate")
    p.add_argument("--final-eval-iters", type=int, default=200,
                   help="batches of the last, steadier estimate (0: none)")
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--bias", action="store_true",
                   help="biases in the projections (nanoGPT's --bias=True; its default is False)")
    p.add_argument("--untied", action="store_true",
                   help="an output layer of its own instead of the embedding's matrix")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--seed", type=int, default=1337, help="nanoGPT's torch.manual_seed")
    p.add_argument("--samples", type=int, default=2, help="samples printed at the end")
    p.add_argument("--sample-length", type=int, default=300)
    p.add_argument("--save", type=Path, default=None, help="write the trained model here")
    return p.parse_args(argv)


def estimate_loss(trainer: zn.Trainer, splits: dict[str, np.ndarray], block: int, batch: int,
                  iters: int, rng: np.random.Generator) -> dict[str, float]:
    """nanoGPT's estimate_loss: the mean loss of ``iters`` random batches of each split."""
    return {name: float(np.mean([trainer.evaluate(*zn.text.random_blocks(data, block, batch, rng))
                                 for _ in range(iters)]))
            for name, data in splits.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        text = zn.text.load_text(args.data)
        vocab = zn.text.CharVocab.from_text(text)
        train, val = zn.text.split(vocab.encode(text), 0.9)
        net = zn.gpt(len(vocab), args.block_size, args.n_layer, args.n_head, args.n_embd,
                     dropout=args.dropout, bias=args.bias, tie_weights=not args.untied,
                     dtype=args.dtype, seed=args.seed)
        trainer = zn.Trainer(
            net, loss="categorical_crossentropy",
            optimizer=zn.optim.AdamW(args.lr, betas=(0.9, 0.99), weight_decay=0.1,
                                     decay="weights"),
            lr_schedule=zn.optim.WarmupCosine(args.warmup, args.iters, min_lr=args.min_lr),
            clip_grad_norm=1.0, seed=args.seed)
        if len(val) <= args.block_size:
            raise ValueError(f"the validation part of {args.data} has {len(val)} characters, "
                             f"fewer than a block of {args.block_size}: use a longer text")
    except ValueError as exc:  # a bad file or setting: say which, no traceback
        print(f"gpt_shakespeare: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(text):,} characters, {len(vocab)} distinct; train {len(train):,}, "
          f"val {len(val):,}")
    print(f"GPT: {args.n_layer} layers, {args.n_head} heads, width {args.n_embd}: "
          f"{net.n_params / 1e6:.2f}M parameters ({args.dtype})")
    rng = np.random.default_rng(args.seed)          # the training batches
    eval_rng = np.random.default_rng(args.seed + 1)  # the evaluation batches
    splits = {"train": train, "val": val}
    print("before training:", repr(zn.text.generate(net, vocab, "\n", 80, seed=0)))
    t0 = time.perf_counter()
    losses: dict[str, float] = {}
    for it in range(args.iters + 1):
        if it % args.eval_interval == 0 or it == args.iters:
            losses = estimate_loss(trainer, splits, args.block_size, args.batch_size,
                                   args.eval_iters, eval_rng)
            elapsed = time.perf_counter() - t0
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                  f" ({elapsed:.0f} s)", flush=True)
        if it == args.iters:
            break
        trainer.step(*zn.text.random_blocks(train, args.block_size, args.batch_size, rng))
    seconds = time.perf_counter() - t0
    print(f"{args.iters} steps in {seconds:.0f} s ({1000 * seconds / max(args.iters, 1):.0f} ms "
          f"per step, evaluations included); final val loss {losses['val']:.4f} "
          f"(nanoGPT's published CPU run: 1.88)")
    if args.final_eval_iters:
        # 20 batches (nanoGPT's estimate) vary by a few hundredths from draw to draw.
        steady = estimate_loss(trainer, {"val": val}, args.block_size, args.batch_size,
                               args.final_eval_iters, eval_rng)
        print(f"val loss over {args.final_eval_iters} batches: {steady['val']:.4f}")
    for k in range(args.samples):
        print(f"--- sample {k + 1} ---")
        # nanoGPT's top_k=200, clamped to the vocabulary as its generate does (65 characters)
        print(zn.text.generate(net, vocab, "\n", args.sample_length, temperature=0.8,
                               top_k=200, seed=k))  # nanoGPT's sample.py
    if args.save is not None:
        zn.save(net, args.save)
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
