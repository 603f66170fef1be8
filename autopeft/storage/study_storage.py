"""Where a study lives: the journal file of a run directory or an RDB URL, each checked before it is used.

Optuna reports a bad URL or a damaged journal with a SQLAlchemy or JSON traceback, and only once it is used:
after `autopeft search` has written run.json, or (for a journal) after it has appended records behind the damage,
which makes the journal unreadable for good. These checks run first and name the URL or the journal's line.
"""

from __future__ import annotations

import json
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from autopeft.errors import ConfigError

RDB_EXAMPLES = "sqlite:///study.db or postgresql://user@host/db"


def check_storage_url(url: str, where: str) -> None:
    """Refuse an RDB URL that SQLAlchemy cannot parse, whose database driver is missing, that keeps the study in
    memory, or whose SQLite file would go into a folder that does not exist; `where` names the flag or key.

    Nothing is connected or created: the check must not write before the rest of the input is validated."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{where} {url}: expected an RDB URL such as {RDB_EXAMPLES}") from None
    try:
        dialect = parsed.get_dialect()
    except ArgumentError:  # NoSuchModuleError: no dialect of that name
        raise ConfigError(
            f"{where} {url}: unknown database '{parsed.drivername}'; expected an RDB URL such as {RDB_EXAMPLES}"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise ConfigError(
            f"{where} {shown}: the database driver '{error.name}' is not installed; install it or use "
            f"{RDB_EXAMPLES.split(' or ')[0]}"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return
    if parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            f"{where} {shown}: an in-memory database loses the study; expected a file, e.g. sqlite:///study.db"
        )
    folder = Path(parsed.database).expanduser().parent
    if not folder.is_dir():
        raise ConfigError(
            f"{where} {shown}: folder {folder} does not exist; expected the database file's folder"
        )


def open_journal(path: Path) -> JournalStorage:
    """The journal storage of `path`, replayed. A journal Optuna cannot replay is a `ConfigError` that names its
    first damaged line; an unfinished last line (a write still under way) is left to Optuna, which skips it."""
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise ConfigError(f"{path}: cannot open the journal ({error.strerror})") from None
    except (ValueError, KeyError, TypeError, IndexError) as error:
        damage = _first_damaged_line(path, last_may_be_unfinished=True)
        problem = (
            f"line {damage[0]} {damage[1]}" if damage else f"Optuna cannot replay it ({type(error).__name__})"
        )
        raise ConfigError(_corrupt(path, problem)) from None


def check_journal_appendable(path: Path) -> None:
    """Refuse a journal that a search cannot safely append to: every line must be a complete JSON record.

    Optuna skips a damaged last line when it reads (a write that was cut short), but a search appends behind it,
    and from then on the damage sits in the middle of the file, where every later read fails."""
    if not path.is_file():
        return
    damage = _first_damaged_line(path, last_may_be_unfinished=False)
    if damage is not None:
        number, problem, last = damage
        if last:
            raise ConfigError(
                f"{path}: line {number}, the last, {problem}: a write was cut short; readers skip that line, "
                "but a search would append behind it; delete the line to resume"
            )
        raise ConfigError(_corrupt(path, f"line {number} {problem}"))
    open_journal(path)


def _first_damaged_line(path: Path, last_may_be_unfinished: bool) -> tuple[int, str, bool] | None:
    """The first line of the journal that is not a complete JSON record: its number, what is wrong with it and
    whether it is the last line; None when every line is whole."""
    with path.open("rb") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if not line.endswith(b"\n"):
            return None if last and last_may_be_unfinished else (number, "is cut short (no line end)", last)
        try:
            record = json.loads(line)
        except ValueError as error:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            return number, f"is not a JSON record ({str(error).split(':')[0]})", last
        if not isinstance(record, dict) or "op_code" not in record:
            return number, "is not a journal record (expected an object with op_code)", last
    return None


def _corrupt(path: Path, problem: str) -> str:
    return f"{path}: {problem}; the journal is damaged: restore it from a copy or start a new run directory"
