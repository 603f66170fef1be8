"""Service load: while two searches run in `autopeft serve`, N clients poll the studies list and a study page
for a bounded time (loopback only); and the same two searches from the CLI alone, for the trial throughput.

    python benchmarks/service_load.py --clients 20 --seconds 30 --trials 4 [--interval 1.0]

Reports requests/s, p50/p99 latency and errors of the polling (each client asks for the list, a study and its
live page in turn, pausing `--interval` seconds between requests, as an open page refreshes), and the trials per
minute of the two searches run by the service (with the polling) against the same two searches run at once by
`autopeft search` without the service, before and after (the machine's load drifts).
The model is a tiny random BERT built offline (tests/tiny_models.py), so the figures measure the service,
not the training.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch
from transformers import BertForSequenceClassification

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.search.ray_cluster import free_port
from tests.space_files import write_space
from tests.tiny_models import save_tiny, tiny_bert_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
AUTOPEFT = [sys.executable, "-m", "autopeft"]


@dataclass
class Polling:
    """What the clients saw: one latency per answered request, and the failures."""

    latencies: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, seconds: float | None) -> None:
        with self.lock:
            if seconds is None:
                self.errors += 1
            else:
                self.latencies.append(seconds)
                self.by_path.setdefault(path, []).append(seconds)


def _model_and_space(folder: Path, trials: int) -> tuple[Path, str]:
    torch.manual_seed(0)
    model = save_tiny(BertForSequenceClassification(tiny_bert_config()), folder / "model")
    return model, write_space(folder, model, trials=trials).read_text()


def _start_server(root: Path, model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [*AUTOPEFT, "serve", "--root", str(root), "--port", str(port), "--data-root", str(model)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--max-jobs", "2"], stdout=out, stderr=subprocess.STDOUT, env=ENV
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # a cold start imports torch and builds the app
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not start; see {log}")


def _poll(url: str, study: str, until: float, interval: float, polling: Polling) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        paths = ("/api/searches", f"/api/searches/{study}", f"/studies/{study}/live")
        turn = 0
        while time.monotonic() < until:
            start = time.perf_counter()
            path = paths[turn % len(paths)]
            try:
                ok = client.get(path).status_code == 200
            except httpx.HTTPError:
                ok = False
            polling.record(path, time.perf_counter() - start if ok else None)
            turn += 1
            time.sleep(interval)


def _wait_done(url: str, job_id: int) -> dict[str, object]:
    while True:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
        if job["state"] not in ("queued", "running"):
            return dict(job)
        time.sleep(1)


def _service_run(folder: Path, model: Path, space: str, args: argparse.Namespace) -> dict[str, object]:
    server, url = _start_server(folder / "root", model, folder / "server.log")
    try:
        jobs = [
            httpx.post(f"{url}/api/searches", json={"name": name, "space": space}, timeout=60).json()["id"]
            for name in ("first", "second")
        ]
        while httpx.get(f"{url}/api/searches/first", timeout=30).json()["state"] != "running":
            time.sleep(0.2)
        polling = Polling()
        until = time.monotonic() + args.seconds
        clients = [
            threading.Thread(target=_poll, args=(url, "first", until, args.interval, polling))
            for _ in range(args.clients)
        ]
        started = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
        done = [_wait_done(url, job) for job in jobs]
    finally:
        server.terminate()
        server.wait(timeout=120)
    return {"polling": polling, "elapsed": elapsed, "jobs": done}


def _job_seconds(job: dict[str, object]) -> float:
    def stamp(key: str) -> float:
        from datetime import datetime

        return datetime.fromisoformat(str(job[key])).timestamp()

    return stamp("finished_at") - stamp("started_at")


def _cli_seconds(folder: Path, space: str) -> float:
    """The mean wall time of the same two searches run at once by `autopeft search`, without the service: the
    service runs two, so the baseline does too (on two cores, one search alone would have the machine to itself)."""
    folder.mkdir()
    path = folder / "cli.yaml"
    path.write_text(space)
    start = time.monotonic()
    commands = [
        [*AUTOPEFT, "search", str(path), "--out", str(folder / f"cli-{i}"), "--quiet"] for i in (0, 1)
    ]
    searches = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV) for c in commands
    ]
    ends = []
    for search in searches:
        if search.wait() != 0:
            raise SystemExit(f"the CLI search exited {search.returncode}")
        ends.append(time.monotonic() - start)
    return statistics.mean(ends)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the clients poll")
    parser.add_argument("--trials", type=int, default=4, help="trials of each search")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="each client's pause between requests (a live page's refresh)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="service-load-") as temporary:
        folder = Path(temporary)
        model, space = _model_and_space(folder, args.trials)
        before = _cli_seconds(
            folder / "before", space
        )  # the CLI alone before and after: the machine's load drifts
        service = _service_run(folder, model, space, args)
        after = _cli_seconds(folder / "after", space)
        cli = (before + after) / 2
    polling: Polling = service["polling"]  # type: ignore[assignment]
    service_seconds = statistics.mean(_job_seconds(job) for job in service["jobs"])  # type: ignore[attr-defined]
    figures = {
        "clients": args.clients,
        "interval_seconds": args.interval,
        "poll_seconds": round(float(service["elapsed"]), 1),  # type: ignore[arg-type]
        "requests": len(polling.latencies),
        "requests_per_second": round(len(polling.latencies) / float(service["elapsed"]), 1),  # type: ignore[arg-type]
        "latency_p50_ms": round(1000 * statistics.median(polling.latencies), 1),
        "latency_p99_ms": round(1000 * _percentile(polling.latencies, 0.99), 1),
        "list_latency_p99_ms": round(1000 * _percentile(polling.by_path.get("/api/searches", []), 0.99), 1),
        "p50_p99_ms_by_path": {
            path: [round(1000 * _percentile(seconds, 0.5), 1), round(1000 * _percentile(seconds, 0.99), 1)]
            for path, seconds in polling.by_path.items()
        },
        "errors": polling.errors,
        "trials": args.trials,
        "service_search_seconds": round(service_seconds, 1),
        "cli_search_seconds": round(cli, 1),
        "cli_search_seconds_before_after": [round(before, 1), round(after, 1)],
        "service_trials_per_minute": round(60 * args.trials / service_seconds, 2),
        "cli_trials_per_minute": round(60 * args.trials / cli, 2),
        "throughput_ratio_service_over_cli": round(cli / service_seconds, 3),
    }
    print(json.dumps(figures, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
