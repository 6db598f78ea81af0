"""``zeronn playground``: watch a network learn in the browser, with zeronn as the engine.

``create_app()`` is the Starlette app (:mod:`zeronn.playground.app` documents its routes
and messages); ``serve(port=0, open_browser=True)`` runs it with uvicorn on 127.0.0.1.
The web stack (the ``playground`` extra) is imported on first use, so
:mod:`zeronn.playground.data` and :mod:`zeronn.playground.session` work without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["HOST", "create_app", "serve"]

HOST = "127.0.0.1"  # the playground never listens on other interfaces


def create_app() -> Any:
    """The playground's ASGI app (a Starlette application)."""
    from zeronn.playground.app import create_app as make

    return make()


def serve(port: int = 0, open_browser: bool = True,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serves the playground on ``http://127.0.0.1:<port>/`` until Ctrl-C.

    ``port=0`` picks a free port. Once listening, ``on_ready(url)`` is called (default:
    print the URL) and the browser is opened unless ``open_browser`` is false.
    """
    import socket
    import webbrowser

    import uvicorn

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be a whole number from 0 to 65535, got {port!r}")
    # Bind the socket here, so port 0's pick is known before the URL is printed.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {HOST}:{port} ({exc.strerror}): choose another "
                         "--port, or 0 for a free one") from None
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    from uvicorn.config import WS_PROTOCOLS

    # The sans-I/O websockets protocol where this uvicorn has it (its older one is deprecated).
    ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "auto"
    # A client message is a small JSON command: 1 MB is far more than any needs.
    config = uvicorn.Config(create_app(), log_level="warning", ws=ws, lifespan="off",
                            ws_max_size=1 << 20)
    server = uvicorn.Server(config)

    def ready() -> None:
        (on_ready or (lambda u: print(f"zeronn playground: {u}  (Ctrl-C stops it)",
                                      flush=True)))(url)
        if open_browser:
            webbrowser.open(url)

    import asyncio

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            ready()
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()
