"""A character-level language model on the tiny Shakespeare text, zeronn beside PyTorch.

    python benchmarks/charlstm.py [--threads 1] [--epochs 6] [--chars 200000] ...

The model is ``Embedding(65, E) -> LSTM(H, return_sequences=True) -> Dense(65,
softmax)`` (float32), trained with zeronn's own API (``zn.text`` for the data,
``net.fit`` with ``categorical_crossentropy`` on class indices, Adam, gradient clipping)
and the same model in PyTorch (``nn.Embedding``, ``nn.LSTM(batch_first=True)``,
``nn.Linear``, ``F.cross_entropy`` on the logits, ``torch.optim.Adam``,
``clip_grad_norm_``). PyTorch starts from zeronn's initial weights (copied; the layouts
are torch's) and sees the same batches in the same order: the windows of the first
``--chars`` characters of the training text (``zn.text.split``: the first 90%), cut by
``zn.text.sequence_windows`` into blocks of T, shuffled once per epoch by one seeded
generator; zeronn's fit gets each epoch's order as it is (``shuffle=False``). So the two
train the same numbers, and their losses track each other to float32 rounding
(amplified a little by each step, which is why the comparison is "within noise").

Reported: each epoch's training loss (the mean of its batch losses) for both; the
validation loss per character (the mean cross-entropy, in nats, over every window of the
held-out 10%) before and after training for both, and the difference; the time per
epoch side by side: each epoch is cut into ``parts`` runs of whole batches, and the
libraries train each run in turns (alternately first), so a busy neighbour slows both
alike; the ratio is the median of the runs' ratios, with its range. BLAS and torch get
the same number of threads (threadpoolctl and ``torch.set_num_threads``). And text
sampled from zeronn's model before and after training (``zn.text.generate``).

PyTorch's ``nn.LSTM`` on the CPU runs oneDNN's fused LSTM (``mkldnn_rnn_layer``, forward
and backward), twice as fast as its own per-step path here; that is the peer. zeronn
runs, with the extra ``fast`` (numba), its compiled LSTM steps (``zeronn._fast.recurrent``)
and sum by token id (``zeronn._fast.embedding``); that is the run the target is for.
With numba installed, a third run trains a copy of the model on NumPy alone
(``ZERONN_NO_FAST=1`` during its turns), in the same turns, and its time is reported
beside the others.

The text is read from ``../shared/data/tinyshakespeare.txt`` beside the repository (or
``--text``); nothing is downloaded. The target: zeronn's time per epoch <= 1.0x
PyTorch's, and validation losses equal within ``LOSS_TOLERANCE``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import zeronn as zn
from zeronn._fast import available as compiled_available
from zeronn._fast import numpy_only

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import blas_description  # beside this file

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
#: How far apart the two libraries' final validation losses may be (nats per character):
#: the same init and batches, float32 arithmetic in different orders.
LOSS_TOLERANCE = 0.02
#: zeronn's time per epoch over PyTorch's, at most.
SPEED_TARGET = 1.0


@dataclass(frozen=True)
class Config:
    """The model and its training budget."""

    steps: int = 64         # T, characters per window (nanoGPT's block_size)
    embed: int = 32         # E
    units: int = 128        # H
    batch: int = 32
    epochs: int = 6
    chars: int | None = 200_000  # the first characters of the training split (None: all)
    val_chars: int | None = None  # the first characters of the validation split
    lr: float = 3e-3
    clip: float = 1.0
    seed: int = 0
    parts: int = 8          # each epoch is timed in this many turns per library
    sample: int = 200       # characters sampled before and after training (0: none)
    prompt: str = "ROMEO:"


@dataclass
class Data:
    vocab: zn.text.CharVocab
    x: np.ndarray           # (n, T) training windows, n a multiple of the batch size
    y: np.ndarray
    xv: np.ndarray          # (m, T) validation windows
    yv: np.ndarray


def load(path: Path, cfg: Config) -> Data:
    """The vocabulary of the whole text and the windows of both splits."""
    text = zn.text.load_text(path)
    vocab = zn.text.CharVocab.from_text(text)
    train, val = zn.text.split(vocab.encode(text))
    train = train[:cfg.chars] if cfg.chars else train
    val = val[:cfg.val_chars] if cfg.val_chars else val
    x, y = zn.text.sequence_windows(train, cfg.steps)
    n = len(x) // cfg.batch * cfg.batch   # whole batches only: no short last batch
    if n == 0:
        raise ValueError(f"{len(x)} windows of {cfg.steps} make no batch of {cfg.batch}: "
                         "use more characters")
    xv, yv = zn.text.sequence_windows(val, cfg.steps)
    return Data(vocab, x[:n], y[:n], xv, yv)


def build_zeronn(vocab_size: int, cfg: Config) -> zn.Sequential:
    return zn.Sequential([
        zn.Embedding(vocab_size, cfg.embed),
        zn.LSTM(cfg.units, return_sequences=True),
        zn.Dense(vocab_size, activation="softmax"),
    ], input_shape=(cfg.steps,), dtype="float32", seed=cfg.seed)


def build_torch(net: zn.Sequential) -> Any:
    """The same model in PyTorch, from ``net``'s current weights."""
    import torch

    emb, lstm, dense = net.layers
    vocab_size, e = emb.W.shape

    class CharLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(vocab_size, e)
            self.lstm = torch.nn.LSTM(e, lstm.units, batch_first=True)
            self.head = torch.nn.Linear(lstm.units, vocab_size)

        def forward(self, ids: Any) -> Any:
            return self.head(self.lstm(self.emb(ids))[0])   # logits (n, T, vocab)

    model = CharLSTM()
    with torch.no_grad():
        model.emb.weight.copy_(torch.from_numpy(emb.W.copy()))
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.lstm, name + "_l0").copy_(torch.from_numpy(getattr(lstm, name).copy()))
        model.head.weight.copy_(torch.from_numpy(dense.W.T.copy()))   # W (H, V) = weight.T
        model.head.bias.copy_(torch.from_numpy(dense.b.reshape(-1).copy()))
    return model


def epoch_orders(n: int, cfg: Config) -> list[np.ndarray]:
    """Each epoch's order of the training windows (the same for both libraries)."""
    rng = np.random.default_rng(cfg.seed)
    return [rng.permutation(n) for _ in range(cfg.epochs)]


def parts(order: np.ndarray, cfg: Config) -> list[np.ndarray]:
    """``order`` cut into ``cfg.parts`` runs of whole batches (consecutive: together they
    are the epoch, batch for batch)."""
    batches = len(order) // cfg.batch
    cuts = [round(batches * k / cfg.parts) * cfg.batch for k in range(cfg.parts + 1)]
    return [order[a:b] for a, b in itertools.pairwise(cuts) if b > a]


class ZeronnTrainer:
    """zeronn's side: ``epoch(order)`` is one ``fit`` over the windows in that order
    (a part of an epoch, or a whole one: fits continue one Adam)."""

    def __init__(self, net: zn.Sequential, data: Data, cfg: Config) -> None:
        self.net, self.data, self.cfg = net, data, cfg
        self.optimizer: zn.optim.Optimizer | None = zn.optim.Adam(lr=cfg.lr)

    def epoch(self, order: np.ndarray) -> float:
        hist = self.net.fit(self.data.x[order], self.data.y[order],
                            loss="categorical_crossentropy", optimizer=self.optimizer,
                            epochs=1, batch_size=self.cfg.batch, shuffle=False,
                            clip_grad_norm=self.cfg.clip, engine="numpy")
        self.optimizer = None   # later fits continue this Adam and its moments
        return float(hist["loss"][-1])

    def steps(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        """One training step per batch (a fit each): the loss of each, before its update."""
        losses = []
        for xb, yb in batches:
            hist = self.net.fit(xb, yb, loss="categorical_crossentropy",
                                optimizer=self.optimizer, epochs=1, batch_size=len(xb),
                                shuffle=False, clip_grad_norm=self.cfg.clip, engine="numpy")
            self.optimizer = None
            losses.append(float(hist["loss"][-1]))
        return losses

    def val_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy per character (nats) of the windows ``x`` -> ``y``."""
        p = self.net.predict(x)                                        # (m, T, V)
        picked = np.take_along_axis(p, y[..., None], axis=-1)[..., 0]
        return float(-np.mean(np.log(picked.astype(np.float64))))


class NumpyTrainer(ZeronnTrainer):
    """zeronn on NumPy alone: the same trainer, its steps without the compiled kernels."""

    def epoch(self, order: np.ndarray) -> float:
        with numpy_only():
            return super().epoch(order)

    def val_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        with numpy_only():
            return super().val_loss(x, y)


class TorchTrainer:
    """PyTorch's side, the same steps: logits -> cross_entropy -> clip -> Adam."""

    def __init__(self, net: zn.Sequential, data: Data, cfg: Config) -> None:
        import torch

        self.torch = torch
        self.model = build_torch(net)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.data, self.cfg = data, cfg
        self.x = torch.from_numpy(np.array(data.x))  # a copy: the windows are read-only views
        self.y = torch.from_numpy(np.array(data.y))

    def _step(self, xb: Any, yb: Any) -> float:
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(xb)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 yb.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        return float(loss.detach())

    def epoch(self, order: np.ndarray) -> float:
        idx = self.torch.from_numpy(order)
        x, y = self.x[idx], self.y[idx]
        b = self.cfg.batch
        losses = [self._step(x[s:s + b], y[s:s + b]) for s in range(0, len(order), b)]
        return float(np.mean(losses))   # whole batches: the mean is fit's weighted mean

    def steps(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        return [self._step(self.torch.from_numpy(np.ascontiguousarray(xb)),
                           self.torch.from_numpy(np.ascontiguousarray(yb)))
                for xb, yb in batches]

    def val_loss(self, x: np.ndarray, y: np.ndarray, chunk: int = 256) -> float:
        torch = self.torch
        total = 0.0
        with torch.no_grad():
            for s in range(0, len(x), chunk):
                logits = self.model(torch.from_numpy(np.array(x[s:s + chunk])))
                total += float(torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    torch.from_numpy(np.array(y[s:s + chunk])).reshape(-1),
                    reduction="sum"))
        return total / y.size


def warm_up(net: zn.Sequential, tt: TorchTrainer, data: Data, cfg: Config) -> None:
    """One step of each library on copies (work buffers, thread pools, and numba's
    kernels loaded from its cache), so that the first timed turn is not the first step."""
    import torch

    xb, yb = data.x[:cfg.batch], data.y[:cfg.batch]
    net.copy().fit(xb, yb, loss="categorical_crossentropy", optimizer=zn.optim.Adam(),
                   epochs=1, batch_size=cfg.batch, shuffle=False, clip_grad_norm=cfg.clip,
                   engine="numpy")
    model = copy.deepcopy(tt.model)
    loss = torch.nn.functional.cross_entropy(
        model(torch.from_numpy(np.array(xb))).reshape(-1, len(data.vocab)),
        torch.from_numpy(np.array(yb)).reshape(-1))
    loss.backward()
    torch.optim.Adam(model.parameters()).step()


def run(cfg: Config, path: Path = TEXT, threads: int = 1,
        log: Any = print) -> dict[str, Any]:
    """Trains both models in turns; returns the losses, the times and the samples."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        data = load(path, cfg)
        net = build_zeronn(len(data.vocab), cfg)
        zt, tt = ZeronnTrainer(net, data, cfg), TorchTrainer(net, data, cfg)
        sides: dict[str, Any] = {"zeronn": zt, "torch": tt}
        if compiled_available():  # zeronn's run uses the kernels: time NumPy alone too
            sides["numpy"] = NumpyTrainer(net.copy(), data, cfg)
        res: dict[str, Any] = {
            "config": cfg, "vocab": len(data.vocab), "windows": len(data.x),
            "val_windows": len(data.xv), "threads": threads, "blas": blas_description(),
            "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
        }
        if cfg.sample:
            res["sample_before"] = zn.text.generate(net, data.vocab, cfg.prompt, cfg.sample,
                                                    temperature=0.8, seed=cfg.seed)
        res["val_before"] = {name: side.val_loss(data.xv, data.yv)
                             for name, side in sides.items()}
        times: dict[str, list[float]] = {name: [] for name in sides}
        losses: dict[str, list[float]] = {name: [] for name in sides}
        warm_up(net, tt, data, cfg)
        turns: dict[str, list[float]] = {name: [] for name in sides}  # each part's seconds
        names = list(sides)
        for k, order in enumerate(epoch_orders(len(data.x), cfg)):
            epoch_loss = dict.fromkeys(sides, 0.0)
            for j, part in enumerate(parts(order, cfg)):
                # Turns: the runs take turns going first, so none always runs right
                # after another's work (caches, a neighbour's burst).
                first = (k + j) % len(names)
                turn = names[first:] + names[:first]
                for name in turn:
                    t0 = time.perf_counter()
                    loss = sides[name].epoch(part)
                    turns[name].append(time.perf_counter() - t0)
                    epoch_loss[name] += loss * len(part) / len(order)
            for name in sides:
                losses[name].append(epoch_loss[name])
                times[name].append(sum(turns[name][-len(parts(order, cfg)):]))
            log(f"epoch {k + 1}: loss zeronn {losses['zeronn'][-1]:.4f} torch "
                f"{losses['torch'][-1]:.4f}; s/epoch zeronn {times['zeronn'][-1]:.2f} "
                f"torch {times['torch'][-1]:.2f}")
        res["val_after"] = {name: side.val_loss(data.xv, data.yv)
                            for name, side in sides.items()}
        if cfg.sample:
            res["sample_after"] = zn.text.generate(net, data.vocab, cfg.prompt, cfg.sample,
                                                   temperature=0.8, seed=cfg.seed)
    res["losses"], res["times"], res["turns"] = losses, times, turns
    ratios = [a / b for a, b in zip(turns["zeronn"], turns["torch"])]
    res["ratios"] = ratios
    res["ratio"] = statistics.median(ratios)
    if "numpy" in turns:
        res["numpy_ratios"] = [a / b for a, b in zip(turns["numpy"], turns["torch"])]
    res["val_diff"] = res["val_after"]["zeronn"] - res["val_after"]["torch"]
    res["loss_ok"] = abs(res["val_diff"]) <= LOSS_TOLERANCE
    res["speed_ok"] = res["ratio"] <= SPEED_TARGET
    return res


def describe(cfg: Config, vocab: int = 65) -> str:
    chars = "all" if cfg.chars is None else f"{cfg.chars:,}"
    return (f"Embedding({vocab}, {cfg.embed}) -> LSTM({cfg.units}) -> Dense({vocab}, "
            f"softmax), "
            f"float32; T={cfg.steps}, batch {cfg.batch}, Adam(lr={cfg.lr:g}), "
            f"clip_grad_norm={cfg.clip:g}, {cfg.epochs} epochs over the windows of the "
            f"first {chars} training characters")


def report(res: dict[str, Any]) -> list[str]:
    """The result as lines of text (markdown-friendly)."""
    r = res["ratios"]
    vb, va = res["val_before"], res["val_after"]
    med = {k: statistics.median(v) for k, v in res["times"].items()}
    lines = [
        f"model: {describe(res['config'], res['vocab'])}; {res['windows']} training windows, "
        f"{res['val_windows']} validation windows",
        f"threads: {res['threads']} (torch {res['torch_threads']}); NumPy BLAS: "
        f"{res['blas']}; NumPy {res['numpy']}, PyTorch {res['torch']}",
        f"validation loss per character (nats): before zeronn {vb['zeronn']:.4f} torch "
        f"{vb['torch']:.4f}; after zeronn {va['zeronn']:.4f} torch {va['torch']:.4f} "
        f"(difference {res['val_diff']:+.1e}, tolerance {LOSS_TOLERANCE}: "
        f"{'ok' if res['loss_ok'] else 'MISSED'})",
        f"time per epoch: zeronn {med['zeronn']:.2f} s "
        f"({'compiled kernels' if 'numpy' in med else 'NumPy: numba is not installed'}), "
        f"torch {med['torch']:.2f} s (medians); zeronn / torch median {res['ratio']:.2f} "
        f"(range {min(r):.2f}-{max(r):.2f} over {len(r)} turns of 1/{res['config'].parts} "
        f"epoch), target <= {SPEED_TARGET}: {'ok' if res['speed_ok'] else 'MISSED'}",
    ]
    if "numpy" in med:
        rn = res["numpy_ratios"]
        lines.append(
            f"zeronn on NumPy alone (ZERONN_NO_FAST=1, a copy of the model in the same turns): "
            f"{med['numpy']:.2f} s per epoch, validation loss before {vb['numpy']:.4f}, after "
            f"{va['numpy']:.4f}; / torch "
            f"median {statistics.median(rn):.2f} (range {min(rn):.2f}-{max(rn):.2f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", default=str(TEXT))
    p.add_argument("--threads", type=int, default=1)
    for f in dataclasses.fields(Config):
        if f.name not in ("prompt",):
            p.add_argument("--" + f.name.replace("_", "-"), default=getattr(d, f.name),
                           type=float if f.name in ("lr", "clip") else int)
    args = p.parse_args(argv)
    cfg = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                    if f.name != "prompt"})
    path = Path(args.text)
    if not path.exists():
        print(f"skipped: no text at {path} (nothing is downloaded; save the tiny "
              "Shakespeare text there)")
        return 0
    res = run(cfg, path, args.threads)
    if cfg.sample:
        print(f"\nzeronn, before training:\n{res['sample_before']}\n")
        print(f"zeronn, after training:\n{res['sample_after']}\n")
    print("\n".join(report(res)))
    return 0 if res["loss_ok"] and res["speed_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
