"""The playground's web app (Starlette): the page, uploads, exports and the live WebSocket.

Served on 127.0.0.1 only (see :func:`zeronn.playground.serve`). Bad input anywhere is
answered with a message (HTTP 400/404/413 JSON ``{"error": ...}``, or a WebSocket
``{"type": "error"}``), never a server traceback.

HTTP routes
-----------
- ``GET /`` -> ``static/index.html``; ``GET /static/{file}`` -> the page's files (nothing
  outside the static folder).
- ``POST /api/upload``: the body is the raw CSV file (any content type; over 2 MB -> 413).
  200 ``{"upload_id": str, "columns": [str], "numeric_columns": [str], "rows": int}``;
  a bad file -> 400 ``{"error": "the problem and the fix"}``. The server keeps the last
  20 uploads in memory.
- ``GET /api/export/{session_id}/model`` -> the current model as a ``.zeronn`` download
  (``playground.zeronn``), ``/onnx`` -> ``playground.onnx``, ``/snippet`` -> text/plain
  Python that rebuilds the data and the network with zeronn and trains it (``?epochs=N``
  optional). Unknown session -> 404 JSON error.

WebSocket ``/ws`` (JSON text messages; one session per connection, made on connect with
the default config; its first message is a snapshot with ``points``)
----------------------------------------------------------------------------------------
Client -> server:

- ``{"type": "setup", "config": CONFIG}``: (re)builds data, features and a network with
  fresh initial weights from ``config.seed``; epoch 0; pauses. Answer: a snapshot with points.
- ``{"type": "update", "config": {...partial}}``: ``learning_rate``, ``optimizer``,
  ``regularization``, ``regularization_rate``, ``batch_size`` change live and keep the
  weights (a new optimizer starts from no state); any other key rebuilds as setup with the
  merged config. Answer: a snapshot (with points after a rebuild).
- ``{"type": "play"}`` / ``{"type": "pause"}``: training runs in a worker thread; a
  snapshot about every 40 ms (as many epochs as fit, at least one; an added optional
  ``"frame_ms": 20-2000`` sets another interval). Pause stops after the current epoch
  and sends a final snapshot (``playing: false``). A run whose loss diverges stops by
  itself: a snapshot with ``playing: false`` and a notice.
- ``{"type": "step"}``: exactly one epoch, then a snapshot (pauses first if playing).
- ``{"type": "reset"}``: new initial weights (the next seed), epoch 0, history cleared.
- ``{"type": "rewind"}``: the same initial weights as the last setup/reset, epoch 0,
  optimizer state, shuffling and history restarted: training again gives identical numbers.
- ``{"type": "explain", "lang": "en" | "ja"}``: one mini-batch's forward and backward pass
  (``zn.trace``; no update). The mini-batch is the first ``batch_size`` rows of
  ``points.train`` (as network inputs: the active features); Dropout's masks come from
  ``zn.trace(..., seed=0)``.

setup, reset, rewind and a rebuilding update pause a running play.

Server -> client:

- ``{"type": "snapshot", ...}``: ``session`` (the id the export routes take), ``epoch``,
  ``playing``, ``task`` ("classification" | "regression"), ``classes`` (1 regression,
  2 binary, 3-5 multiclass), ``train_loss``, ``test_loss`` (evaluation mode, without the
  penalty), ``test_accuracy`` (0-1, null for regression), ``history`` {``train_loss``,
  ``test_loss``}: one value per epoch from epoch 0 (before training) - when longer than 500,
  every ``history_step``-th epoch; ``grid`` {``size``: 40, ``extent``: [-6, 6, -6, 6],
  ``output``: size² values row-major, y from +6 (top) down, x from -6: the prediction
  (regression), P(class 1) (binary) or the predicted class index (multiclass),
  ``confidence``: the largest class probability (multiclass only)}; ``neurons``: per layer
  a list of 16x16 maps (256 values, same layout), one per unit: layer 0 the input
  features, then each hidden layer's activations, then the output units; ``features``;
  ``layers``: [{``units``, ``activation``, ...}] for each hidden layer, then the output
  layer (so ``layers[i]`` goes with ``weights[i]``); ``weights``: one (fan_in, fan_out)
  matrix per Dense layer; ``biases``: one list per Dense layer; ``diagnostics``
  {``grad_norm``: per Dense layer, the norm of its gradient on the last mini-batch;
  ``dead_relu``: per hidden layer the share of units never positive on the training set,
  null if not relu}; ``points`` {``train``, ``test``: [[x1, x2, y]]} only after
  connect/setup/reset/rewind. Added fields: ``class_names``, ``train_accuracy``,
  ``history_step``, ``config`` (the full validated config), ``diverged``.
- ``{"type": "explain", "lang", "batch_size", "loss", "features", "steps": [{"name",
  "phase": "forward" | "loss" | "backward", "formula", "text", "shape": [rows, cols],
  "values": at most 8x8, 4 significant digits}]}``. Steps: ``X``, then ``zn.trace``'s
  entries in order: for one hidden layer ``z1, a1, z2, a2, loss, error_output, dW2, db2,
  error_hidden, dW1, db1`` (``a2`` is the prediction); deeper ``z{i}, a{i}, ..., loss,
  delta{i}, dW{i}, db{i}``; Dropout and BatchNorm add their own (``mask{i}``, ``bn{i}``...,
  ``i`` = the position in the network's layer list).
- ``{"type": "error", "message"}`` for a bad message or config (the connection stays
  open); ``{"type": "notice", "message"}`` (e.g. "the loss diverged: lower the learning
  rate"; NaN and infinities are sent as null).

CONFIG keys: see :data:`zeronn.playground.session.DEFAULT_CONFIG` (defaults) and
:func:`~zeronn.playground.session.validate_config`; added: ``multiclass_shape``
("blobs" | "spiral").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import zeronn.playground.data as pgdata
from zeronn.playground.session import LIVE_KEYS, Session

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
MAX_UPLOADS = 20
FRAME_SECONDS = 0.04  # a snapshot this often while playing: the page redraws on each
MAX_MESSAGE_CHARS = 100_000  # a client message longer than this is refused


def _encode(message: dict[str, Any]) -> str:
    """Strict, compact JSON (the session already turned NaN and infinities into null)."""
    return json.dumps(message, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _State:
    """What one server holds: the uploads (bounded) and the live sessions by id."""

    def __init__(self) -> None:
        self.uploads: OrderedDict[str, pgdata.Table] = OrderedDict()
        self.sessions: dict[str, Session] = {}

    def add_upload(self, table: pgdata.Table) -> str:
        uid = uuid.uuid4().hex[:12]
        self.uploads[uid] = table
        while len(self.uploads) > MAX_UPLOADS:
            self.uploads.popitem(last=False)
        return uid


class _Connection:
    """One WebSocket and its session; the play loop is an asyncio task whose epochs run
    in a worker thread, so the server keeps answering."""

    def __init__(self, ws: WebSocket, state: _State) -> None:
        self.ws = ws
        self.state = state
        self.session: Session | None = None
        self.playing = False
        self.stop = threading.Event()
        self.task: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()
        self.frame_seconds = FRAME_SECONDS

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else _encode(message)
        async with self.send_lock:
            await self.ws.send_text(text)

    async def send_snapshot(self, snap: dict[str, Any] | str) -> None:
        if isinstance(snap, dict):
            snap["playing"] = self.playing
        await self.send(snap)
        assert self.session is not None
        for notice in self.session.take_notices():
            await self.send({"type": "notice", "message": notice})

    async def run(self) -> None:
        await self.ws.accept()
        session = await anyio.to_thread.run_sync(lambda: Session(uploads=self.state.uploads))
        self.session = session
        self.state.sessions[session.id] = session
        try:
            await self.send_snapshot(await anyio.to_thread.run_sync(session.snapshot, True))
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                try:
                    if text is None:
                        raise ValueError("binary messages are not understood: send JSON text "
                                         "messages like {\"type\": \"step\"}")
                    await self.handle(text)
                except ValueError as exc:
                    await self.send({"type": "error", "message": str(exc)})
                except (WebSocketDisconnect, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a bug: reported to the page, the server stays up
                    await self.send({"type": "error", "message": f"internal error "
                                     f"({type(exc).__name__}: {exc}); please report it"})
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the tab went away (closing, or mid-send): nothing is left to tell it
        finally:
            await self.pause()
            self.state.sessions.pop(session.id, None)

    async def pause(self) -> None:
        self.playing = False
        self.stop.set()
        task, self.task = self.task, None
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task

    async def play_loop(self) -> None:
        session = self.session
        assert session is not None
        encode_seconds = 0.0

        def frame() -> str:
            # Training, the snapshot and its JSON all off the event loop's thread; the
            # training leaves room for the encoding (as long as the last one took).
            nonlocal encode_seconds
            # Train until the frame's deadline (less the encoding, as long as the last one
            # took): a frame that ran over (an epoch is not divisible, the hop to the event
            # loop and the send take time) shortens the next one, so the rate holds.
            budget = next_at - time.perf_counter() - encode_seconds
            snap = session.train_for(max(budget, 0.0), self.stop)
            snap["playing"] = not session.diverged
            t0 = time.perf_counter()
            text = _encode(snap)
            encode_seconds = time.perf_counter() - t0
            return text

        next_at = time.perf_counter() + self.frame_seconds
        try:
            while self.playing and not self.stop.is_set():
                text = await anyio.to_thread.run_sync(frame)
                next_at += self.frame_seconds
                now = time.perf_counter()
                if next_at < now - self.frame_seconds:  # far behind (a slow epoch): no burst
                    next_at = now
                if session.diverged:  # NaN weights stay NaN: stop and say why
                    self.playing = False
                    await self.send_snapshot(text)
                elif self.playing and not self.stop.is_set():
                    await self.send_snapshot(text)
        except (WebSocketDisconnect, asyncio.CancelledError):
            raise
        except Exception as exc:  # never a silent stop: the page hears what went wrong
            self.playing = False
            with contextlib.suppress(Exception):
                await self.send({"type": "error", "message": f"training stopped: {exc}"})

    async def handle(self, text: str) -> None:
        session = self.session
        assert session is not None
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the message has {len(text)} characters, more than "
                             f"{MAX_MESSAGE_CHARS}: send smaller messages")
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("the message is not JSON: send {\"type\": ...} objects") from None
        kind = msg.get("type") if isinstance(msg, dict) else None
        run = anyio.to_thread.run_sync
        if kind == "play":
            frame_ms = msg.get("frame_ms", FRAME_SECONDS * 1000)
            if (isinstance(frame_ms, bool) or not isinstance(frame_ms, (int, float))
                    or not 20 <= frame_ms <= 2000):
                raise ValueError(f"frame_ms must be a number from 20 to 2000, got {frame_ms!r}")
            self.frame_seconds = frame_ms / 1000
            if not self.playing:
                self.playing = True
                self.stop.clear()
                self.task = asyncio.create_task(self.play_loop())
        elif kind == "pause":
            was = self.playing or self.task is not None
            await self.pause()
            if was:
                await self.send_snapshot(await run(session.snapshot))
        elif kind == "step":
            await self.pause()
            await self.send_snapshot(await run(session.step))
        elif kind in ("setup", "update"):
            config = msg.get("config", {})
            if not isinstance(config, dict):
                raise ValueError("config must be an object: {\"type\": \"setup\", "
                                 "\"config\": {...}}")
            if kind == "setup":
                await self.pause()
                await self.send_snapshot(await run(session.setup, config))
            else:

                if set(config) - LIVE_KEYS:
                    await self.pause()
                await self.send_snapshot(await run(session.update, config))
        elif kind in ("reset", "rewind"):
            await self.pause()
            await self.send_snapshot(await run(getattr(session, kind)))
        elif kind == "explain":
            lang = msg.get("lang", "en")
            await self.send(await run(session.explain, lang))
        else:
            raise ValueError(f"unknown message type {kind!r}: use setup, update, play, pause, "
                             "step, reset, rewind or explain")


def create_app() -> Starlette:
    """The playground's ASGI app (routes in the module docstring)."""
    state = _State()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def static(request: Request) -> Response:
        name = request.path_params["file"]
        root = STATIC.resolve()
        path = (root / name).resolve()
        # Only files inside the static folder: no "..", no absolute paths, no symlinks out.
        if root not in path.parents or not path.is_file():
            return _error(f"no such file: {name}", 404)
        return FileResponse(path)

    async def upload(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > pgdata.MAX_UPLOAD_BYTES:
            return _error(too_big, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > pgdata.MAX_UPLOAD_BYTES:
                return _error(too_big, 413)
        try:
            table = await anyio.to_thread.run_sync(pgdata.parse_csv, bytes(body))
        except ValueError as exc:
            return _error(str(exc), 400)
        uid = state.add_upload(table)
        return JSONResponse({"upload_id": uid, "columns": table.columns,
                             "numeric_columns": table.numeric_columns, "rows": table.rows})

    too_big = (f"the file is larger than {pgdata.MAX_UPLOAD_BYTES // (1024 * 1024)} MB: "
               "upload a smaller sample of it")

    async def export(request: Request) -> Response:
        sid, what = request.path_params["session_id"], request.path_params["what"]
        session = state.sessions.get(sid)
        if session is None:
            return _error(f"no session {sid!r}: open the playground page (sessions end when "
                          "their tab closes)", 404)
        try:
            if what == "model":
                data = await anyio.to_thread.run_sync(session.model_bytes)
                return Response(data, media_type="application/octet-stream", headers={
                    "Content-Disposition": 'attachment; filename="playground.zeronn"'})
            if what == "onnx":
                data = await anyio.to_thread.run_sync(session.onnx_bytes)
                return Response(data, media_type="application/octet-stream", headers={
                    "Content-Disposition": 'attachment; filename="playground.onnx"'})
            if what == "snippet":
                epochs_text = request.query_params.get("epochs")
                epochs = None
                if epochs_text is not None:
                    if not epochs_text.isdigit() or not 1 <= int(epochs_text) <= 100_000:
                        return _error("epochs must be a whole number from 1 to 100000", 400)
                    epochs = int(epochs_text)
                code = await anyio.to_thread.run_sync(session.snippet, epochs)
                return Response(code, media_type="text/plain; charset=utf-8", headers={
                    "Content-Disposition": 'inline; filename="playground.py"'})
        except ImportError as exc:
            return _error(f"this export needs an extra package ({exc}): "
                          "pip install \"zeronn[onnx]\"", 400)
        except ValueError as exc:
            return _error(str(exc), 400)
        return _error(f"unknown export {what!r}: use model, onnx or snippet", 404)

    async def websocket(ws: WebSocket) -> None:
        await _Connection(ws, state).run()

    async def http_error(request: Request, exc: Exception) -> Response:
        # Unknown paths and methods answer JSON as every other refusal does.
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", None) or "error"
        return _error(f"{detail}: {request.method} {request.url.path}", status)

    app = Starlette(exception_handlers={HTTPException: http_error}, routes=[
        Route("/", index),
        Route("/static/{file:path}", static),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/export/{session_id}/{what}", export),
        WebSocketRoute("/ws", websocket),
    ])
    app.state.playground = state
    return app
