"""`autopeft serve`: one long-running server through which a team launches, watches, stops, resumes and audits
searches: a JSON API (OpenAPI at /openapi.json), browser pages, a job queue of worker processes and its records
in a real database. See README.md, "The service".

Binding any --host other than 127.0.0.1 needs a token (--token or AUTOPEFT_SERVE_TOKEN); see
autopeft/serve/auth.py for how requests carry it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autopeft.cli.arguments import positive_int


def add_parser(subparsers: Any) -> None:
    """Register `serve` on the `autopeft` command line."""
    serve = subparsers.add_parser(
        "serve",
        help="run the service: JSON API, pages and a job queue for searches and audits",
        description="Serve the run directories under --root: launch, watch, stop, resume and audit searches.",
    )
    serve.add_argument("--root", required=True, type=Path, help="folder of the run directories (created)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)")
    serve.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="T",
        help="editor token, SECRET or NAME=SECRET (repeatable); required beyond loopback",
    )
    serve.add_argument(
        "--viewer-token", action="append", default=[], metavar="T", help="read-only token (repeatable)"
    )
    serve.add_argument(
        "--database", help="SQLAlchemy URL of the job records (default: SQLite in ROOT/.serve)"
    )
    serve.add_argument("--max-jobs", type=positive_int, default=2, help="jobs running at once (default 2)")
    serve.add_argument(
        "--data-root",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a folder requests may name models and data in (repeatable)",
    )
    serve.add_argument(
        "--max-trials", type=positive_int, default=200, help="most trials per search (default 200)"
    )
    serve.add_argument(
        "--max-upload-kib", type=positive_int, default=256, help="largest request body in KiB (default 256)"
    )
    serve.add_argument(
        "--stop-grace", type=float, default=30.0, help="seconds before a stop kills (default 30)"
    )
    serve.add_argument("--ray-address", metavar="HOST:PORT", help="submit search jobs to this Ray cluster")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.serve.auth import AccessTokens

    tokens = AccessTokens.parse(args.token, args.viewer_token)
    tokens.check_host(args.host)  # before the heavy imports: a refused flag answers at once

    import uvicorn

    from autopeft.serve.app import create_app
    from autopeft.serve.settings import ServiceSettings

    settings = ServiceSettings(
        root=args.root.resolve(),
        tokens=tokens,
        database_url=args.database,
        max_jobs=args.max_jobs,
        data_roots=tuple(args.data_root),
        max_trials=args.max_trials,
        max_body_bytes=args.max_upload_kib * 1024,
        ray_address=args.ray_address,
        stop_grace_seconds=args.stop_grace,
    )
    app = create_app(settings)
    print(
        f"autopeft service on http://{args.host}:{args.port} serving {settings.root} (Ctrl-C to stop)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
