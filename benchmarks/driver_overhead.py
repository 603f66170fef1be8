"""Overhead of the Ray driver against the embedded driver on the same short trials.

Both drivers run the same search (demo task, random sampler, same seed, so the same plans) as
`autopeft search` processes: the embedded one in-process, the Ray one through `--address` on a
`ray start --head` cluster on 127.0.0.1 that this script starts (with its own token) and stops. Trials run
one at a time in both, so the difference is the driver's cost: cluster connection, actor start-up, result
transport, experiment checkpoints.

Reported: wall time of each command, the ratio Ray / embedded, the sum of the trials' own `wall_seconds`, and
the per-trial overhead (command wall time minus trial time, over the trial count) of each driver.

    python benchmarks/driver_overhead.py --trials 6 --steps 8
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
SPACE = """model: {model}
task: {{name: demo}}
trials: {trials}
seed: 0
budget: {{train_examples: 64, dev_examples: 64, steps: {steps}, max_length: 24, batch_size: 8,
         evaluations: 2}}
objectives: [{{name: task_metric}}, {{name: trainable_parameters}}]
dimensions:
  modules: [query, value]
  rank: {{choices: [2, 4, 8], share: module_type}}
sampler: {{name: random}}
"""


def timed_search(space: Path, run: Path, env: dict[str, str], *extra: str) -> float:
    """Wall seconds of one `autopeft search` command, which must succeed."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "autopeft", "search", str(space), "--out", str(run), "--quiet", *extra]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"autopeft search failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def trial_seconds(run: Path) -> tuple[int, float]:
    """Complete trials and the sum of their own wall_seconds, read from the run's study."""
    from autopeft.storage.run_directory import RunDirectory

    trials = [t for t in RunDirectory(run).load_study().trials if t.values]
    return len(trials), sum(t.user_attrs["metrics"]["wall_seconds"] for t in trials)


def start_cluster(folder: Path, cpus: int) -> tuple[str, dict[str, str]]:
    """A head node on 127.0.0.1 with token authentication; returns its address and the env to join it."""
    token = folder / "auth_token"
    token.write_text(uuid.uuid4().hex)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(cpus),
            "--num-gpus",
            "0",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    return f"127.0.0.1:{port}", env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per trial")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the cluster and of each Ray trial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        space = folder / "space.yaml"
        space.write_text(SPACE.format(model=args.model, trials=args.trials, steps=args.steps))
        embedded = timed_search(space, folder / "embedded", dict(os.environ))
        address, env = start_cluster(folder, args.cpus)
        try:
            ray = timed_search(
                space,
                folder / "ray",
                env,
                "--backend",
                "ray",
                "--address",
                address,
                "--cpus-per-trial",
                str(args.cpus),
            )
        finally:
            subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False)
        report(args.trials, embedded, trial_seconds(folder / "embedded"), ray, trial_seconds(folder / "ray"))


def report(
    trials: int,
    embedded: float,
    embedded_trials: tuple[int, float],
    ray: float,
    ray_trials: tuple[int, float],
) -> None:
    print(f"complete trials: embedded {embedded_trials[0]}, ray {ray_trials[0]} (of {trials})")
    print(f"wall time: embedded {embedded:.1f} s, ray {ray:.1f} s, ratio ray/embedded {ray / embedded:.2f}")
    print(f"trial time (sum of wall_seconds): embedded {embedded_trials[1]:.1f} s, ray {ray_trials[1]:.1f} s")
    for name, wall, (_, inside) in (("embedded", embedded, embedded_trials), ("ray", ray, ray_trials)):
        print(f"per-trial overhead {name}: {(wall - inside) / trials:.2f} s")
    print(f"extra per trial on ray: {(ray - embedded) / trials:.2f} s")


if __name__ == "__main__":
    main()
