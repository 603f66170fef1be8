"""AccessTokens: who may read the service and who may change it.

The rule is the dashboard's (dashboards/access_token.py): on 127.0.0.1 (the default) no token is needed; any
other --host needs one. Once any token is configured, every request must carry a valid one, in one of:

- the header `X-Autopeft-Token: <token>` (scripts, curl),
- the header `Authorization: Bearer <token>`,
- the query parameter `?token=<token>` (a browser, once: the answer sets an HttpOnly, SameSite=Strict cookie
  `autopeft_token` that the pages' own requests then carry).

Two kinds of token: an editor token (`--token SECRET` or `--token NAME=SECRET`, or AUTOPEFT_SERVE_TOKEN) may do
everything; a viewer token (`--viewer-token ...`) may only read (GET). The token's name is recorded as the
owner of the jobs it starts. Secrets are compared with `hmac.compare_digest`, every token every time.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from autopeft.errors import ConfigError

TOKEN_ENV = "AUTOPEFT_SERVE_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_NAMED = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]{0,39})=(.+)$")

Role = Literal["editor", "viewer"]


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the token's name (`local` without tokens) and what it may do."""

    name: str
    role: Role

    @property
    def may_change(self) -> bool:
        return self.role == "editor"


LOCAL_CALLER = Caller("local", "editor")


@dataclass(frozen=True)
class AccessToken:
    name: str
    secret: str
    role: Role


@dataclass(frozen=True)
class AccessTokens:
    """The configured tokens; empty means an open server, which is only allowed on loopback."""

    tokens: tuple[AccessToken, ...] = ()

    @classmethod
    def parse(
        cls, editors: Iterable[str], viewers: Iterable[str], use_environment: bool = True
    ) -> AccessTokens:
        """Tokens from `--token` and `--viewer-token` values (`SECRET` or `NAME=SECRET`), plus the environment
        variable as one more editor token."""
        editor_values = list(editors)
        if use_environment and os.environ.get(TOKEN_ENV):
            editor_values.append(os.environ[TOKEN_ENV])
        tokens = [_token(value, "editor", "--token") for value in editor_values]
        tokens += [_token(value, "viewer", "--viewer-token") for value in viewers]
        _check_unique(tokens)
        return cls(tuple(tokens))

    @property
    def required(self) -> bool:
        return bool(self.tokens)

    def check_host(self, host: str) -> None:
        """Listening beyond this machine needs a token."""
        if host not in LOOPBACK_HOSTS and not self.required:
            raise ConfigError(
                f"--host {host}: listening beyond this machine needs a token; pass --token "
                f"(or set {TOKEN_ENV}), or keep the default --host 127.0.0.1"
            )

    def identify(self, presented: str) -> Caller | None:
        """The caller a presented secret belongs to; None when it matches no token (an open server: `local`)."""
        if not self.required:
            return LOCAL_CALLER
        found = None
        for token in self.tokens:  # every token is compared, so timing does not tell which one matched
            if hmac.compare_digest(presented.encode(), token.secret.encode()):
                found = Caller(token.name, token.role)
        return found


def _token(value: str, role: Role, flag: str) -> AccessToken:
    named = _NAMED.match(value)
    name, secret = (named.group(1), named.group(2)) if named else (role, value)
    if not secret.strip():
        raise ConfigError(f"{flag}: expected SECRET or NAME=SECRET with a non-empty secret")
    return AccessToken(name, secret, role)


def _check_unique(tokens: list[AccessToken]) -> None:
    names = [t.name for t in tokens]
    secrets = [t.secret for t in tokens]
    for token in tokens:
        if names.count(token.name) > 1:
            raise ConfigError(
                f"--token/--viewer-token: the name '{token.name}' is given twice; use NAME=SECRET"
            )
        if secrets.count(token.secret) > 1:
            raise ConfigError(f"--token/--viewer-token: token '{token.name}' reuses another token's secret")
