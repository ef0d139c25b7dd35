"""Start the app's production server and the hook server: what ``python -m <package>`` runs.

With one worker (the default) the app server and the hook server share one
process. With several, this process becomes a supervisor: it imports the app,
forks the workers, serves the hooks and relays every lifecycle event to each
worker over a socket pair, so that all of them see the identity set by /run
and stop admitting requests at /suspend.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import signal
import socket
import threading
from types import ModuleType
from typing import Any

from .config import Settings, SettingsError, load_settings
from .gate import Gate, set_gate
from .hookserver import start_hook_server
from .lifecycle import Lifecycle
from .logs import configure_logging
from .worker import LocalDispatcher, ProcessDispatcher, serve_worker_channel

logger = logging.getLogger("microvm")

# The platform's proxy and the hook caller reach the app inside the VM; binding
# all interfaces is what the platform's samples do. Tests set 127.0.0.1.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104
# Threads of the WSGI server in each worker process.
WSGI_THREADS = 8
# The servers that an app module can name in its SERVER attribute.
SERVER_KINDS = ("uvicorn", "waitress", "aiohttp")


def serve(app_module_name: str) -> int:
    """Serve the app defined in ``app_module_name`` until the process is stopped; return the exit status."""
    configure_logging()
    try:
        settings = load_settings()
    except SettingsError as error:
        logger.error("invalid settings: %s", error)
        return 2
    host = os.environ.get("MICROVM_HOST", DEFAULT_HOST)
    warmup_token = secrets.token_urlsafe(32)
    gate = Gate(settings.request_gate_timeout_seconds, settings.ungated_paths)
    gate.warmup_token = warmup_token
    set_gate(gate)

    try:
        app_socket = _bind(host, settings.app_port)
    except OSError as error:
        logger.error(
            "cannot listen on %s:%d: %s; choose a free port with APP_PORT or a valid address with MICROVM_HOST",
            host,
            settings.app_port,
            error,
        )
        return 2
    app_module = importlib.import_module(app_module_name)
    server_kind = getattr(app_module, "SERVER", None)
    if server_kind not in SERVER_KINDS:
        logger.error(
            "%s.SERVER is %r; set it to 'uvicorn' (ASGI), 'waitress' (WSGI) or 'aiohttp' (an aiohttp Application)",
            app_module_name,
            server_kind,
        )
        return 2
    logger.info(
        "starting %s on %s:%d (hooks on port %d, %d worker(s))",
        server_kind,
        host,
        settings.app_port,
        settings.hooks_port,
        settings.workers,
        extra={"event": "start"},
    )
    if settings.workers == 1:
        lifecycle = Lifecycle(settings, LocalDispatcher(), warmup_token, loopback_address(host))
        try:
            hook_server = start_hook_server(lifecycle, host, settings.hooks_port)
        except OSError as error:
            _log_hook_bind_error(host, settings.hooks_port, error)
            return 2
        lifecycle.start_warmup()
        try:
            run_app_server(app_module, app_socket)
        finally:
            hook_server.shutdown()
            logger.info("stopped", extra={"event": "stop"})
        return 0
    return _supervise(settings, app_module, app_socket, host, warmup_token)


def loopback_address(host: str) -> str:
    """Return the address that reaches a listener bound to ``host`` from this machine."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compares, does not bind
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY on accepted connections only when proto is IPPROTO_TCP. With
    # proto 0, each keep-alive response from uvicorn waits about 40 ms for a delayed ACK.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.set_inheritable(True)
    return listener


def run_app_server(app_module: ModuleType, app_socket: socket.socket) -> None:
    """Run the app module's server on an already bound socket until it stops."""
    app: Any = app_module.app
    if app_module.SERVER == "uvicorn":
        import uvicorn

        config = uvicorn.Config(
            app,
            lifespan="auto",
            # Logging goes through the root logger's JSON handler.
            log_config=None,
            access_log=False,
            server_header=False,
            # The platform's proxy sends no X-Forwarded-For; one in a request came from the client.
            proxy_headers=False,
        )
        uvicorn.Server(config).run(sockets=[app_socket])
    elif app_module.SERVER == "aiohttp":
        from aiohttp import web

        # handle_signals turns SIGTERM into aiohttp's graceful shutdown; print=None and
        # access_log=None keep its banner and access lines out of the JSON log. After SIGTERM,
        # connections still open get 5 s to finish instead of the default 60 s.
        web.run_app(app, sock=app_socket, print=None, handle_signals=True, access_log=None, shutdown_timeout=5.0)
    else:
        import waitress

        # waitress sets no SIGTERM handler, and the default one kills the process mid-response.
        # SystemExit ends waitress's loop, which then closes the server.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        waitress.serve(app, sockets=[app_socket], threads=WSGI_THREADS, ident="", clear_untrusted_proxy_headers=True)


def _log_hook_bind_error(host: str, port: int, error: OSError) -> None:
    logger.error(
        "cannot listen for hooks on %s:%d: %s; choose a free port with HOOKS_PORT or a valid address with MICROVM_HOST",
        host,
        port,
        error,
    )


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _supervise(
    settings: Settings, app_module: ModuleType, app_socket: socket.socket, host: str, warmup_token: str
) -> int:
    channels: list[socket.socket] = []
    workers: list[int] = []
    for index in range(settings.workers):
        supervisor_end, worker_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            supervisor_end.close()
            for channel in channels:
                channel.close()
            status = 0
            try:
                threading.Thread(
                    target=serve_worker_channel, args=(worker_end,), name="microvm-channel", daemon=True
                ).start()
                run_app_server(app_module, app_socket)
            except BaseException:
                logger.exception("worker %d stopped with an error", index)
                status = 1
            finally:
                os._exit(status)
        worker_end.close()
        channels.append(supervisor_end)
        workers.append(pid)
    app_socket.close()

    lifecycle = Lifecycle(settings, ProcessDispatcher(channels), warmup_token, loopback_address(host))
    try:
        hook_server = start_hook_server(lifecycle, host, settings.hooks_port)
    except OSError as error:
        _log_hook_bind_error(host, settings.hooks_port, error)
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        for pid in workers:
            os.waitpid(pid, 0)
        return 2
    lifecycle.start_warmup()

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_status = 0
    remaining = set(workers)
    while remaining:
        pid, status = os.wait()
        remaining.discard(pid)
        if not stopping:
            logger.error(
                "worker process %d exited with status %d; stopping the others", pid, os.waitstatus_to_exitcode(status)
            )
            exit_status = 1
            stop(signal.SIGTERM, None)
    hook_server.shutdown()
    logger.info("stopped", extra={"event": "stop"})
    return exit_status
