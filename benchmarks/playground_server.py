"""The playground server's rates: training steps, snapshots and frames per second.

The issue's workload: a 6x8 network (six hidden layers of 8 tanh units) on a 500-point
dataset (circle, 250 training rows, batch size 10: 25 optimizer steps per epoch).

1. In process (``Session``): epochs and optimizer steps per second of CPU time while
   training (``train_for``, no snapshots), the time to build one snapshot (the grid's one
   predict call, the neuron maps, the diagnostics) and to encode it as JSON, and its size.
   Each figure is the best of ``--rounds`` rounds (the machine is shared: minima are the
   least disturbed).
2. Over the wire: ``zeronn playground --no-browser`` in a subprocess, a WebSocket client
   that sets the workload up and presses play for ``--seconds``: snapshots received per
   second (the frames the page can draw) and epochs trained per second, wall time.

Run: ``python benchmarks/playground_server.py`` (``--rounds 5 --seconds 5`` by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from zeronn.playground.session import Session

CONFIG = {"dataset": "circle", "n_points": 500, "train_share": 0.5, "batch_size": 10,
          "features": ["x1", "x2"], "learning_rate": 0.03,
          "layers": [{"units": 8, "activation": "tanh"}] * 6}


def in_process(rounds: int) -> dict[str, float]:
    s = Session(CONFIG)
    steps_per_epoch = -(-s.X_train.shape[0] // CONFIG["batch_size"])
    epoch_cpu, snap_cpu, json_cpu = [], [], []
    size = 0
    for _ in range(rounds):
        s.rewind()
        t = time.process_time()
        s.train_for(1.0)  # trains for 1 s of wall time, then builds one snapshot
        n = s.epoch
        t_snap = time.process_time()
        snap = s.snapshot()
        t_json = time.process_time()
        text = json.dumps(snap, allow_nan=False, separators=(",", ":"))
        t_end = time.process_time()
        # The training share: the round's CPU time less the snapshot train_for built.
        epoch_cpu.append(max(t_snap - t - (t_json - t_snap), 1e-9) / n)
        snap_cpu.append(t_json - t_snap)
        json_cpu.append(t_end - t_json)
        size = len(text)
    best = min(epoch_cpu)
    return {"epochs_per_s": 1 / best, "steps_per_s": steps_per_epoch / best,
            "snapshot_ms": 1000 * min(snap_cpu), "json_ms": 1000 * min(json_cpu),
            "snapshot_kb": size / 1024}


async def _client(url: str, seconds: float) -> dict[str, float]:
    import websockets

    start = time.perf_counter()
    async with websockets.connect(url, max_size=None) as ws:
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "setup", "config": CONFIG}))
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "play"}))
        first = json.loads(await ws.recv())
        t0, e0, frames = time.perf_counter(), first["epoch"], 0
        while (now := time.perf_counter()) - t0 < seconds:
            msg = json.loads(await ws.recv())
            if msg["type"] == "snapshot":
                frames += 1
                last = msg
        await ws.send(json.dumps({"type": "pause"}))
        return {"frames_per_s": frames / (now - t0),
                "wire_epochs_per_s": (last["epoch"] - e0) / (now - t0),
                "elapsed": time.perf_counter() - start}


def _cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def over_the_wire(seconds: float) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-m", "zeronn.cli", "playground", "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        with ThreadPoolExecutor(1) as pool:
            line = pool.submit(proc.stdout.readline).result(timeout=60)  # type: ignore[union-attr]
        match = re.search(r"http://(127\.0\.0\.1:\d+)/", line)
        if not match:
            raise RuntimeError(f"the playground did not print its URL: {line!r}")
        cpu0 = _cpu_seconds(proc.pid)
        out = asyncio.run(_client(f"ws://{match.group(1)}/ws", seconds))
        # Includes the setup and the pause: a slight over-estimate of the CPU per frame.
        out["server_cpu_share"] = (_cpu_seconds(proc.pid) - cpu0) / out["elapsed"]
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    a = in_process(args.rounds)
    b = over_the_wire(args.seconds)
    print("playground server, 6x8 tanh network, circle 500 points (250 train), batch 10")
    print(f"  training (CPU time, best of {args.rounds}): {a['epochs_per_s']:.0f} epochs/s "
          f"= {a['steps_per_s']:.0f} optimizer steps/s")
    print(f"  one snapshot: build {a['snapshot_ms']:.1f} ms, JSON {a['json_ms']:.1f} ms, "
          f"{a['snapshot_kb']:.0f} KiB")
    print(f"  over the WebSocket ({args.seconds:g} s of play, wall time): "
          f"{b['frames_per_s']:.1f} snapshots/s, {b['wire_epochs_per_s']:.0f} epochs/s; "
          f"the server had {100 * b['server_cpu_share']:.0f}% of a core")
    print(f"  (load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
