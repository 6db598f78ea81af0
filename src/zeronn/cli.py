"""The ``zeronn`` command. Bad input exits with code 2 and one ``zeronn: error: ...`` line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]


class CLIError(Exception):
    """A user mistake: printed as ``zeronn: error: <message>``, exit code 2."""


def _demo(args: argparse.Namespace) -> int:
    """The seed's run printed exactly, then the same data through the general engine."""
    from zeronn import optim
    from zeronn.classic import NN, seed_data
    from zeronn.classic import mse_loss as seed_mse
    from zeronn.network import MLP

    t0 = time.perf_counter()
    X, y = seed_data()
    nn = NN(input_size=2, hidden_size=5, output_size=1)
    net = MLP.from_classic(nn)  # the same initial weights, before the seed trains them
    for epoch in range(1000):
        y_pred = nn.forward(X)
        loss = seed_mse(y, y_pred)
        nn.backward(X, y, y_pred, 0.001)
        if epoch % 100 == 0:
            print(f"Epoch {epoch}, Loss: {loss:.4f}")
    # mean-MSE's gradient is 2/N times the seed's summed error: lr 0.001 * 100 / 2 = 0.05.
    hist = net.fit(X, y, loss="mse", optimizer=optim.SGD(lr=0.05), epochs=1000,
                   batch_size=None, shuffle=False)
    print()
    print(f"The general engine, same start, MLP([2, 5, 1]) + SGD(lr=0.05), full batch: "
          f"final loss {hist['loss'][-1]:.4f} (seed: {loss:.4f})")
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [2.0, -1.0]])
    pred = net.predict(pts)[:, 0]
    print(f"{'x1':>6} {'x2':>6} {'2*x1-3*x2+1':>12} {'network':>10}")
    for (x1, x2), p in zip(pts, pred):
        print(f"{x1:6.1f} {x2:6.1f} {2 * x1 - 3 * x2 + 1:12.4f} {p:10.4f}")
    print(f"({time.perf_counter() - t0:.2f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeronn", description="Neural networks from zero, in NumPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="the seed lesson's run, then the same with the engine",
                          description="Prints the seed notebook's ten loss lines exactly, then "
                                      "trains the same data with the general engine.",
                          epilog="example: zeronn demo")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except CLIError as exc:
        print(f"zeronn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
