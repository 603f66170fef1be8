"""AccessToken: who may read a dashboard that listens beyond this machine.

On 127.0.0.1 (the default) only local users reach the server, so no token is needed. Any other address needs
a token, from `--token` or the `AUTOPEFT_DASHBOARD_TOKEN` environment variable, and then every request must
carry it, in one of:

- the header `X-Autopeft-Token: <token>` (scripts, curl),
- the header `Authorization: Bearer <token>`,
- the query parameter `?token=<token>` (open `http://host:port/?token=<token>` in a browser once: the server
  answers with an HttpOnly, SameSite=Strict cookie `autopeft_token`, which the page's own requests then carry).

A request without a valid token gets 401. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import os

import flask

from autopeft.dashboards.token_transport import TOKEN_COOKIE, TOKEN_HEADER, TOKEN_QUERY, presented_token
from autopeft.errors import ConfigError

TOKEN_ENV = "AUTOPEFT_DASHBOARD_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to enforce: `token`, else the environment variable; required when `host` is not loopback."""
    chosen = token or os.environ.get(TOKEN_ENV) or None
    if chosen is None and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"--host {host}: listening beyond this machine needs a token; "
            f"pass --token or set {TOKEN_ENV} (or keep the default --host 127.0.0.1)"
        )
    return chosen


def protect(server: flask.Flask, token: str) -> None:
    """Answer 401 to every request of `server` that does not carry `token`; remember it in a cookie."""

    @server.before_request
    def _check_token() -> flask.Response | None:
        if hmac.compare_digest(
            presented_token(flask.request.headers, flask.request.args, flask.request.cookies).encode(),
            token.encode(),
        ):
            return None
        return flask.Response(
            f"401 Unauthorized: this dashboard needs its token (header {TOKEN_HEADER}, "
            f"or ?{TOKEN_QUERY}=... once in the browser)\n",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="autopeft"'},
            mimetype="text/plain",
        )

    @server.after_request
    def _remember_token(response: flask.Response) -> flask.Response:
        if flask.request.args.get(TOKEN_QUERY):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response
