"""JobRecord and JobStore: the service's jobs in a real database through SQLAlchemy.

SQLite (a file in the service folder, WAL mode) by default, PostgreSQL (or any SQLAlchemy URL) with
--database. Every state change is committed at once, so a server killed with `kill -9` finds on restart
exactly which jobs were queued and which were running (with their worker's pid), and loses nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Float, Integer, String, Text, create_engine, event, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from autopeft.errors import ConfigError

JOB_KINDS = ("search", "audit")
JOB_STATES = ("queued", "running", "done", "failed", "stopped", "interrupted")
ACTIVE_STATES = ("queued", "running")


class Base(DeclarativeBase):
    pass


class JobRecord(Base):
    """One job: a search (or resumption) or an audit, its command line, where it stands and why."""

    __tablename__ = "autopeft_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    study: Mapped[str] = mapped_column(String(128), index=True)
    run_dir: Mapped[str] = mapped_column(String(1024))
    arguments: Mapped[str] = mapped_column(Text)  # JSON list: the command line after `autopeft`
    backend: Mapped[str] = mapped_column(String(16), default="local")
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    owner: Mapped[str] = mapped_column(String(64))
    trials: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trial: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stop_requested_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    log_path: Mapped[str] = mapped_column(String(1024), default="")
    ray_submission_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    @property
    def argv(self) -> list[str]:
        return [str(part) for part in json.loads(self.arguments)]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class JobStore:
    """Sessions on the job table; every method commits before it returns and hands back detached records."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = _engine(url)
            Base.metadata.create_all(self.engine)
        except (SQLAlchemyError, ImportError) as error:
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise ConfigError(
                f"--database {_shown(url)}: cannot open it; expected a reachable SQLAlchemy URL such as "
                f"postgresql://user:password@host/db ({type(error).__name__}: {detail})"
            ) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def add(self, **fields: Any) -> JobRecord:
        """A new job, queued unless `state` says otherwise."""
        record = JobRecord(**{"state": "queued", "created_at": time.time(), "restarts": 0, **fields})
        with self.session() as session:
            session.add(record)
        return record

    def get(self, job_id: int) -> JobRecord | None:
        with self.session() as session:
            return session.get(JobRecord, job_id)

    def update(self, job_id: int, **fields: Any) -> JobRecord:
        with self.session() as session:
            record = session.get(JobRecord, job_id)
            if record is None:
                raise KeyError(job_id)
            for name, value in fields.items():
                setattr(record, name, value)
        return record

    def jobs(
        self, states: Sequence[str] | None = None, study: str | None = None, limit: int | None = None
    ) -> list[JobRecord]:
        """Jobs, newest first; `states` and `study` filter, `limit` caps."""
        query = select(JobRecord).order_by(JobRecord.id.desc())
        if states is not None:
            query = query.where(JobRecord.state.in_(list(states)))
        if study is not None:
            query = query.where(JobRecord.study == study)
        if limit is not None:
            query = query.limit(limit)
        with self.session() as session:
            return list(session.scalars(query))

    def queued(self) -> list[JobRecord]:
        """Queued jobs in the order they were submitted."""
        return sorted(self.jobs(states=("queued",)), key=lambda record: record.id)

    def active_for(self, study: str, kind: str = "search") -> JobRecord | None:
        """The queued or running job of `kind` for `study`, if any."""
        active = [r for r in self.jobs(states=ACTIVE_STATES, study=study) if r.kind == kind]
        return active[0] if active else None

    def latest_searches(self) -> dict[str, JobRecord]:
        """The newest search job of every study."""
        latest: dict[str, JobRecord] = {}
        for record in self.jobs():
            if record.kind == "search" and record.study not in latest:
                latest[record.study] = record
        return latest

    def close(self) -> None:
        self.engine.dispose()


def _shown(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparsable URL)"


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        parsed = make_url(url)
        if (
            parsed.drivername == "postgresql"
        ):  # SQLAlchemy 2.1 defaults to psycopg 3; the `serve` extra has psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _wal(connection: Any, _record: Any) -> None:  # readers never wait for the writer
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine
