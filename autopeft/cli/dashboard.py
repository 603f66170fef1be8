"""`autopeft dashboard`: the live Pareto explorer of a run directory or storage.

The dashboard binds 127.0.0.1 by default; any other --host needs a token (--token or AUTOPEFT_DASHBOARD_TOKEN)
that every request must carry: header `X-Autopeft-Token`, `Authorization: Bearer`, or `?token=` once in the
browser (see dashboards/access_token.py). Requests without it get 401.
"""

from __future__ import annotations

import argparse

from autopeft.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `dashboard` on the `autopeft` command line."""
    dashboard = subparsers.add_parser(
        "dashboard",
        help="open the interactive Pareto explorer (Dash)",
        description="Serve a web dashboard of a run directory or storage; it follows a running search.",
    )
    dashboard.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="run directory of `autopeft search`")
    dashboard.add_argument("--storage", help="Optuna storage URL (instead of, or overriding, RUN_DIR's)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dashboard.add_argument(
        "--port", type=int, default=8050, help="port, 1 to 65535 or 0 for any free one (default 8050)"
    )
    dashboard.add_argument(
        "--token",
        help="access token, required for a --host other than loopback (or set AUTOPEFT_DASHBOARD_TOKEN)",
    )
    dashboard.add_argument("--refresh", type=float, default=5.0, help="seconds between re-reads (default 5)")
    dashboard.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.dashboards.run_source import RunSource
    from autopeft.dashboards.server import DashboardServer
    from autopeft.storage.study_storage import check_storage_url

    if args.refresh <= 0:
        raise ConfigError(f"--refresh: expected a number of seconds > 0, got {args.refresh}")
    if args.storage is not None and not (args.storage == "journal" and args.run_dir is not None):
        check_storage_url(args.storage, "--storage")
    source = RunSource.open(args.run_dir, args.storage)
    server = DashboardServer(source, args.host, args.port, args.token, args.refresh)
    print(f"autopeft dashboard on {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0
