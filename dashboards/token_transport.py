"""Where a request carries an autopeft access token: the one wire format of the dashboard and the service.

A token travels in the header `X-Autopeft-Token`, in `Authorization: Bearer`, once in the query `?token=` (a
browser; the answer sets the HttpOnly cookie `autopeft_token` that later requests carry), or in that cookie.
Framework-free, so that the Flask dashboard and the FastAPI service read requests the same way.
"""

from __future__ import annotations

from typing import Protocol

TOKEN_HEADER = "X-Autopeft-Token"
TOKEN_QUERY = "token"
TOKEN_COOKIE = "autopeft_token"


class Lookup(Protocol):
    """What both frameworks' headers, query parameters and cookies offer: `get` by name."""

    def get(self, key: str, /) -> str | None: ...


def presented_token(headers: Lookup, query: Lookup, cookies: Lookup) -> str:
    """The token a request carries, from the first place that has one; empty when none does."""
    bearer = headers.get("Authorization") or ""
    return (
        headers.get(TOKEN_HEADER)
        or (bearer[7:] if bearer.startswith("Bearer ") else "")
        or query.get(TOKEN_QUERY)
        or cookies.get(TOKEN_COOKIE)
        or ""
    )
