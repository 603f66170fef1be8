"""DashboardServer: the Dash app on a real HTTP server that can be started, served and stopped.

`autopeft dashboard` serves in the foreground until Ctrl-C; tests start it on a thread and stop it. Both go
through the same binding policy: loopback by default, a token for anything else (see `access_token`).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading

from werkzeug.serving import (
    LISTEN_QUEUE,
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from autopeft.dashboards.access_token import protect, resolve_token
from autopeft.dashboards.app import create_app
from autopeft.dashboards.run_source import RunSource
from autopeft.errors import ConfigError

logger = logging.getLogger(__name__)


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs requests at debug level: the page re-reads the study every few seconds, which would flood the log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s %s", self.requestline, code, size)


class DashboardServer:
    """A threaded WSGI server around one dashboard app."""

    def __init__(
        self,
        source: RunSource,
        host: str = "127.0.0.1",
        port: int = 8050,
        token: str | None = None,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.token = resolve_token(host, token)
        listening = _listen(host, port)
        try:
            app = create_app(source, refresh_seconds)
            if self.token is not None:
                protect(app.server, self.token)
            self._server: BaseWSGIServer = make_server(
                host,
                port,
                app.server,
                threaded=True,
                request_handler=_QuietRequestHandler,
                fd=listening.fileno(),
            )
        finally:
            listening.close()  # the server holds its own duplicate of the socket
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address the server listens on (port 0 resolved to the real one)."""
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # getsockname() of a TCP socket; typeshed also admits a bytes host
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        logger.info("dashboard at %s", self.url)
        self._server.serve_forever()

    def start(self) -> DashboardServer:
        """Serve on a background thread (for tests and notebooks); `stop()` ends it."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="autopeft-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port. Bound here, not by werkzeug, which prints and exits the process when the
    port is taken; here a taken port, an unknown host or a port out of range is a `ConfigError`."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: expected a port from 1 to 65535, or 0 for any free port")
    try:
        family = select_address_family(host, port)
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise ConfigError(f"--host {host}: cannot listen there ({error.strerror or error})") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(get_sockaddr(host, port, family))
        listening.listen(LISTEN_QUEUE)
    except OSError as error:
        listening.close()
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--port {port}: {host}:{port} is already in use; choose another --port, or 0 for any free port"
            ) from None
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen there ({error.strerror or error})"
        ) from None
    return listening
