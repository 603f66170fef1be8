"""The vocabulary of the bad-input catalogue (tests/test_bad_inputs.py): a row (`Case`), the command lines rows
share, and what a row writes before its command runs: a bad search space beside the valid one, data files, plain
files and folders, a damaged copy of the finished run, a port taken by another listener (each setup writes only
into the row's own folder), and how a row's outcome is read: its exit code, its one message line, and byte
snapshots of the folders it must leave unchanged."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from autopeft.cli import main
from tests.space_files import write_space


@dataclass
class Inputs:
    """What a row's setup may use: its own folder (`tmp`), the tiny model, the finished run (read-only), an exit
    stack for resources that must live through the command, and extra placeholders for the command line."""

    tmp: Path
    model: Path
    run: Path
    stack: contextlib.ExitStack[Any]
    names: dict[str, str] = field(default_factory=dict)


Setup = Callable[[Inputs], None]


class Case(NamedTuple):
    """One row: the command line (placeholders {run}: the finished run, {copy}: a damaged copy of it, {tmp}: the
    row's folder, {port}), the words the message must contain, the setup, and the exit code (0: a warning)."""

    argv: str
    words: str | tuple[str, ...]
    setup: Setup | None = None
    code: int = 2


SEARCH = "search {tmp}/bad.yaml --out {run} --study space --quiet"  # bad.yaml against the finished run
FRESH = "search {tmp}/space.yaml --out {tmp}/new --quiet --storage"  # the valid space into a new folder
RESUME = "search {tmp}/space.yaml --out {copy} --study space --quiet"  # resumes the damaged copy
EXPORT = "export {copy} --trial 0 --out {tmp}/exported"


def space(old: str = "", new: str = "", extra: str = "", text: str | None = None) -> Setup:
    """bad.yaml: the valid space (also written as space.yaml) with `old` replaced by `new` and `extra` appended,
    or `text`; MODEL and TMP stand for the tiny model and the row's folder."""

    def setup(inputs: Inputs) -> None:
        valid = write_space(inputs.tmp, inputs.model, trials=2).read_text()
        old_text, new_text = (s.replace("MODEL", str(inputs.model)) for s in (old, new))
        assert old_text in valid
        body = valid.replace(old_text, new_text) + extra if text is None else text
        bad = body.replace("MODEL", str(inputs.model)).replace("TMP", str(inputs.tmp))
        (inputs.tmp / "bad.yaml").write_text(bad)

    return setup


def make(*paths: str, content: str | bytes = "mine") -> Setup:
    """Files (a folder when the path ends with /) in the row's folder."""

    def setup(inputs: Inputs) -> None:
        for path in paths:
            target = inputs.tmp / path
            if path.endswith("/"):
                target.mkdir(parents=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(inputs: Inputs) -> None:
        for one in setups:
            one(inputs)

    return setup


TASK = "task: {name: file, train_file: train.csv, dev_file: dev.csv}"
JSONL_TASK = "task: {name: file, train_file: train.jsonl, dev_file: dev.csv}"
GLUE_TASK = "task: {name: sst2, path: SST-2}"
TRAIN, DEV = "text,label\ngood,pos\nbad,neg\n", "text,label\nfine,pos\n"


def data(files: dict[str, str | bytes], task: str = TASK) -> Setup:
    """A space whose task reads `files` (paths relative to the row's folder; a name ending with / is a folder)."""
    writes = [make(name, content=content) for name, content in files.items()]
    return both(space("task: {name: demo}", task), *writes)


def damaged(path: str, edit: Callable[[Path], None]) -> Setup:
    """{copy}: a copy of the finished run with `edit` applied to its file `path` (and the run's space.yaml)."""

    def setup(inputs: Inputs) -> None:
        shutil.copytree(inputs.run, inputs.tmp / "copy")
        write_space(inputs.tmp, inputs.model, trials=2)
        edit(inputs.tmp / "copy" / path)

    return setup


def writes(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def json_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        content = json.loads(path.read_text())
        change(content)
        path.write_text(json.dumps(content))

    return edit


def line_replaced(number: int, text: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        lines[number - 1] = text + "\n"
        path.write_text("".join(lines))

    return edit


def appended(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(path.read_text() + text)


def removed(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def port_in_use(inputs: Inputs) -> None:
    listener = inputs.stack.enter_context(socket.socket())
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    inputs.names["port"] = str(listener.getsockname()[1])


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with the hash of its bytes (folders as "folder")."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


def exit_code(argv: list[str]) -> int:
    """The CLI's exit code for `argv`, argparse's usage errors (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def one_line_message(err: str, code: int) -> str:
    """The one line the command printed: `autopeft: error: ...` (or `warning`), or argparse's usage error."""
    lines = err.strip().splitlines()
    if code == 2 and lines and lines[0].startswith("usage: autopeft"):
        assert lines[-1].startswith("autopeft") and ": error: " in lines[-1], err
        return lines[-1]
    assert len(lines) == 1, err
    assert lines[0].startswith("autopeft: error: " if code == 2 else "autopeft: warning: "), err
    return lines[0]
