"""create_app: the service's FastAPI app, with its guards (token, write permission, same-origin writes, body
size) and error handlers that answer every refusal with one JSON message.

Everything that can fail on bad flags (the database, the lock on the root, the data roots) is opened here,
before the server binds; the job watcher starts with the app and stops with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autopeft import __version__
from autopeft.dashboards.token_transport import TOKEN_COOKIE, TOKEN_HEADER, TOKEN_QUERY, presented_token
from autopeft.errors import AutopeftError
from autopeft.serve import api, pages
from autopeft.serve.auth import AccessTokens
from autopeft.serve.job_queue import JobQueue, JobRunner
from autopeft.serve.records import JobStore
from autopeft.serve.search_service import SearchService
from autopeft.serve.service_error import ServiceError, validation_message
from autopeft.serve.service_lock import ServiceLock
from autopeft.serve.settings import ServiceSettings
from autopeft.serve.studies import StudyCatalog
from autopeft.serve.worker import LocalRunner

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def create_app(settings: ServiceSettings) -> FastAPI:
    """The app over `settings.root`; raises `ConfigError` when the database or the root cannot be used."""
    runners: dict[str, JobRunner] = {}
    if settings.ray_address:  # checked before anything is written
        from autopeft.serve.ray_jobs import RayRunner

        runners["ray"] = RayRunner(settings)
    settings.root.mkdir(parents=True, exist_ok=True)
    lock = ServiceLock(settings.service_dir / "server.lock")
    store = JobStore(settings.database)
    runners["local"] = LocalRunner(settings)
    queue = JobQueue(settings, store, runners)
    service = SearchService(settings, queue, StudyCatalog(settings.root, store))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        try:
            yield
        finally:
            queue.shutdown()
            store.close()
            lock.release()

    app = FastAPI(title="autopeft service", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.settings = settings
    app.include_router(api.router)
    app.include_router(pages.router)
    _add_error_handlers(app)
    _add_guard(app, settings.tokens)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def service_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, ServiceError)
        return _message(error.status, error.message)

    async def validation_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return _message(422, validation_message(error.errors()))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        message = str(error.detail)
        if error.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        return _message(error.status_code, message, getattr(error, "headers", None))

    async def autopeft_error(_request: Request, error: Exception) -> Response:
        return _message(400, str(error))

    async def unexpected(_request: Request, error: Exception) -> Response:
        return _message(500, f"internal error ({type(error).__name__}); see the server's log")

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(AutopeftError, autopeft_error)
    app.add_exception_handler(Exception, unexpected)


def _add_guard(app: FastAPI, tokens: AccessTokens) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        presented = presented_token(request.headers, request.query_params, request.cookies)
        caller = tokens.identify(presented)
        if caller is None:
            detail = "the token is not valid" if presented else "this server needs a token"
            return _message(
                401,
                f"{detail}: send the header {TOKEN_HEADER} (or Authorization: Bearer), or open ?{TOKEN_QUERY}=... "
                "once in a browser",
                {"WWW-Authenticate": 'Bearer realm="autopeft"'},
            )
        if request.method not in SAFE_METHODS:
            if not caller.may_change:
                return _message(403, f"token '{caller.name}' is a viewer token: it may read, not change")
            if not _same_origin(request):
                return _message(
                    403, "cross-site request refused: changes must come from this server's own pages"
                )
        request.state.caller = caller
        response = await call_next(request)
        if tokens.required and request.query_params.get(TOKEN_QUERY):
            response.set_cookie(TOKEN_COOKIE, presented, httponly=True, samesite="strict")
        return response


def _same_origin(request: Request) -> bool:
    """A browser's cross-site POST carries another site's Origin (or `null`); scripts such as curl send none."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("Host", "")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, size: int | None = None) -> None:
        got = f", got {size}" if size is not None else ""
        super().__init__(413, f"request body: expected at most {limit} bytes ({limit // 1024} KiB){got}")


class BodyLimit:
    """Refuse request bodies over `limit` bytes: by Content-Length at once, else while they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            await _message(400, "Content-Length: expected a number of bytes")(scope, receive, send)
            return
        if length is not None and int(length) > self.limit:
            await _message(413, BodyTooLarge(self.limit, int(length)).detail)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)
