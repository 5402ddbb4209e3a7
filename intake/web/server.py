"""Run the web app with uvicorn in the calling thread until a stop event is set."""

from __future__ import annotations

import threading

import uvicorn
from starlette.applications import Starlette


def serve(app: Starlette, host: str, port: int, stop_event: threading.Event, *, ready: threading.Event | None = None) -> None:
    """Serve `app` on host:port; returns within about a second after `stop_event` is set
    (in-flight requests get up to 5 s to finish). `ready` is set once the socket listens.
    Signals are left to the daemon: uvicorn installs no handlers outside the main thread.
    Raises OSError when the address cannot be bound (port taken)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        server_header=False,
        # uvicorn would believe X-Forwarded-For from loopback and rewrite the client
        # address; the app believes it only from [web] trusted_proxies (app.client_ip)
        proxy_headers=False,
    )
    server = uvicorn.Server(config)

    finished = threading.Event()

    def watch() -> None:
        while not stop_event.wait(0.1) and not finished.is_set():
            if ready is not None and server.started and not ready.is_set():
                ready.set()
        server.should_exit = True

    watcher = threading.Thread(target=watch, name="web-stop-watch", daemon=True)
    watcher.start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits the process when it cannot bind; here that is one thread's error
        raise OSError(f"web listener could not start on {host}:{port} (see the log above)") from None
    finally:
        finished.set()  # a server that failed to start (port taken) also ends the watcher
        watcher.join(timeout=2)
