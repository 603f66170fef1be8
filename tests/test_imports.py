"""Every module of the package imports on its own, in a process where no other autopeft module was imported
first: an import loop can never come back unnoticed (it would break some entry point's import order).

Each module is imported in a fresh forked process whose parent loaded only third-party libraries (torch,
transformers, peft, optuna, ...), so a child starts with no `autopeft` module at all and the check stays fast.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import subprocess
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"autopeft": "autopeft", "analysis": "autopeft.analysis", "dashboards": "autopeft.dashboards"}
THIRD_PARTY = ("torch", "transformers", "peft", "optuna", "pandas", "scipy", "numpy", "pydantic", "rich")


def package_modules() -> list[str]:
    """Dotted names of every module in `autopeft/`, `analysis/` and `dashboards/` (the installed layout)."""
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            dotted = ".".join((package, *parts[:-1], *(() if parts[-1] == "__init__" else (parts[-1],))))
            names.append(dotted)
    return names


def _import_alone(name: str) -> str:
    """Import `name` in this (fresh) process; the traceback's last line on failure, else ''."""
    if any(module == "autopeft" or module.startswith("autopeft.") for module in sys.modules):
        return "the process already held autopeft modules"
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the failure is the test's result, reported with its module
        return traceback.format_exc().strip().splitlines()[-1]
    return ""


def failed_imports() -> dict[str, str]:
    """Import each module in its own forked child of this process; run it in a process without autopeft."""
    for library in THIRD_PARTY:
        importlib.import_module(library)
    modules = package_modules()
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=2, maxtasksperchild=1) as pool:
        results = pool.map(_import_alone, modules, chunksize=1)
    return {module: error for module, error in zip(modules, results, strict=True) if error}


def test_every_module_imports_on_its_own() -> None:
    assert len(package_modules()) > 60
    script = "import json; from tests.test_imports import failed_imports; print(json.dumps(failed_imports()))"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}
