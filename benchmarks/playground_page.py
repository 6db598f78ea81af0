"""The playground page's redraw rate in a real browser (Chromium, driven by playwright).

The issue's workload: a 6x8 network (six hidden layers of 8 tanh units) on a 500-point
dataset (250 training rows, batch size 10: 25 optimizer steps per epoch). The server runs
in this process (uvicorn in a thread, 127.0.0.1); the page plays for ``--seconds`` and
reports, from its own counters (``window.zeronnPlayground``): redraws per second (each
snapshot is drawn once, in the next animation frame), snapshots received per second,
epochs and optimizer steps trained per second (wall time), and the mean time one redraw
takes in the browser (heatmaps, links, output surface, curves, diagnostics).

Run: ``python benchmarks/playground_page.py`` (``--seconds 5``; ``--chromium PATH``,
default the system ``chromium``). Wall-clock rates: on a shared machine, repeat and take
the best.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time

import uvicorn
from playwright.sync_api import sync_playwright

from zeronn.playground import create_app

FRAGMENT = ("#dataset=circle&n_points=500&train_share=0.5&batch_size=10&features=x1,x2"
            "&learning_rate=0.03&layers=" + ",".join(["8:tanh"] * 6))
COUNTERS = ("() => { const s = window.zeronnPlayground;"
            " return [s.frames, s.snapshots, s.last.epoch, s.drawMs]; }")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + FRAGMENT)
        page.wait_for_function("() => { const s = window.zeronnPlayground;"
                               " return s.last && s.last.layers.length === 7; }")
        page.click('[data-testid="play"]')
        time.sleep(1.0)  # past the first frames
        f0, s0, e0, d0 = page.evaluate(COUNTERS)
        t0 = time.perf_counter()
        time.sleep(args.seconds)
        f1, s1, e1, d1 = page.evaluate(COUNTERS)
        dt = time.perf_counter() - t0
        page.click('[data-testid="play"]')
        browser.close()
    server.should_exit = True
    thread.join(10)
    steps_per_epoch = -(-250 // 10)
    print(f"6x8 tanh network, 500 points (250 train, batch 10), {dt:.1f} s of play:")
    print(f"  page redraws/s      {(f1 - f0) / dt:8.1f}")
    print(f"  snapshots/s         {(s1 - s0) / dt:8.1f}")
    print(f"  epochs/s            {(e1 - e0) / dt:8.1f}")
    print(f"  optimizer steps/s   {(e1 - e0) * steps_per_epoch / dt:8.0f}")
    print(f"  one redraw (mean)   {(d1 - d0) / max(1, f1 - f0):8.1f} ms")


if __name__ == "__main__":
    main()
