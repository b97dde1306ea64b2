"""Operating a trail: ingest workers, flushing spill files, spill status, migration."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.markup import escape

from datatrail.cli._common import (
    JsonOpt,
    console,
    emit_json,
    err_console,
    fail,
    guarded,
    progress_bar,
)
from datatrail.errors import ConfigError, KeyFileError
from datatrail.store import HOME_DIRNAME, Home, Store, find_home, open_store

__all__ = ["register"]

HomeOpt = typer.Option(
    None,
    "--home",
    help="Trail folder holding the signing key (signing.key). Default: DATATRAIL_HOME or the "
    "nearest .datatrail/.",
)


def _key_home(home: Path | None) -> Home:
    if home is not None:
        folder = home.expanduser().resolve()
        return Home(path=folder, url=f"sqlite:///{folder / 'trail.db'}")
    found = find_home()
    if found is None:
        raise ConfigError(
            "no trail folder with a signing key here; pass --home or set DATATRAIL_HOME"
        )
    return found


def _store_url(url: str) -> str:
    if "://" in url:
        return url
    path = Path(url).expanduser().resolve()
    if path.is_dir():
        path = path / "trail.db"
    return f"sqlite:///{path}"


def _writable(url: str, home: Home, *, create: bool) -> Store:
    signer = home.signer()
    if signer is None:
        raise KeyFileError(
            f"writing to {url} needs the trail's signing key, and {home.signing_key} does not exist"
        )
    return open_store(_store_url(url), create=create, signer=signer)


# -- ingest ------------------------------------------------------------------------------


def _worker(
    source: str,
    target: str,
    home: Path,
    batch: int,
    ack_wait: float,
    idle: float | None,
    stream: str,
    subject: str,
) -> None:
    from datatrail.emit._nats import ingest

    key_home = Home(path=home, url=target)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = ingest(
        source,
        lambda: _writable(target, key_home, create=True),
        batch=batch,
        ack_wait=ack_wait,
        idle_exit=idle,
        stop=stop,
        stream=stream,
        subject=subject,
    )
    err_console.print(
        f"worker {os.getpid()}: {stats.events:,} events, {stats.appended:,} new, "
        f"{stats.duplicates:,} already stored, {stats.rejected:,} rejected"
    )


@guarded
def ingest_command(
    source: str = typer.Option(..., "--from", help="NATS server, nats://host:4222."),
    target: str = typer.Option(
        ..., "--to", help="Store to commit to: postgresql://… or sqlite:///PATH (or a folder)."
    ),
    home: Path | None = HomeOpt,
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes to run."),
    batch: int = typer.Option(64, "--batch", min=1, help="Messages fetched at once per worker."),
    ack_wait: float = typer.Option(
        30.0, "--ack-wait", help="Seconds before an unacknowledged message is redelivered."
    ),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", help="Stop after this many seconds with nothing to ingest."
    ),
    stream: str = typer.Option(
        "DATATRAIL", "--stream", envvar="DATATRAIL_NATS_STREAM", help="JetStream stream name."
    ),
    subject: str = typer.Option(
        "datatrail.events", "--subject", envvar="DATATRAIL_NATS_SUBJECT", help="Subject."
    ),
) -> None:
    """Commit events from a NATS JetStream stream to a store, acknowledging after each commit.

    Any number of workers (here or on other machines) can share the stream: each
    message is acknowledged only once its events are committed, and events already
    in the store are skipped, so a worker killed at any moment loses and doubles
    nothing. Stop with Ctrl-C or SIGTERM.
    """
    key_home = _key_home(home)
    _writable(target, key_home, create=True).close()  # fail fast on a bad URL or key
    args = (source, target, key_home.path, batch, ack_wait, idle_exit, stream, subject)
    if workers == 1:
        _worker(*args)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=args, name=f"ingest-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
    failed = [p.name for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise fail(f"workers failed: {', '.join(failed)}", code=1)


# -- flush and spill -----------------------------------------------------------------------


def _spill_dir(home: Path | None) -> Path:
    if os.environ.get("DATATRAIL_SPILL_DIR"):
        return Path(os.environ["DATATRAIL_SPILL_DIR"])
    if home is not None:
        return home.expanduser().resolve() / "spill"
    found = find_home()
    return (found.path if found is not None else Path.cwd() / HOME_DIRNAME) / "spill"


@guarded
def flush_command(
    home: Path | None = HomeOpt,
    target: str | None = typer.Option(
        None, "--to", help="Store to replay into. Default: the trail's store (DATATRAIL_URL)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Replay spill files left by processes that exited before the store came back."""
    from datatrail.emit import replay_orphans, spill_status

    key_home = _key_home(home)
    folder = _spill_dir(home or key_home.path)
    files = spill_status(folder)
    waiting = [s for s in files if not s.alive]
    live = [s for s in files if s.alive]
    store = _writable(target or key_home.url, key_home, create=True)
    try:
        appended = replay_orphans(folder, store)
    finally:
        store.close()
    result = {
        "spill_dir": str(folder),
        "files_replayed": len(waiting),
        "events_in_files": sum(s.events for s in waiting),
        "events_appended": appended,
        "live_files": [msgspec.to_builtins(s) for s in live],
    }
    if as_json:
        emit_json(result)
        return
    console.print(
        f"replayed {len(waiting)} spill files: {result['events_in_files']:,} events, "
        f"{appended:,} new to the store"
    )
    for s in live:
        console.print(
            f"  [yellow]left alone[/] {escape(s.path)}: process {s.pid} is still running "
            f"({s.events:,} events); it replays its own file"
        )


spill_app = typer.Typer(help="Spill files: events waiting for the store or transport.")


@spill_app.command("status")
@guarded
def spill_status_command(home: Path | None = HomeOpt, as_json: bool = JsonOpt) -> None:
    """List spill files, their processes and how many events each holds."""
    from datatrail.emit import spill_status

    folder = _spill_dir(home)
    files = spill_status(folder)
    if as_json:
        emit_json(
            {
                "spill_dir": str(folder),
                "events": sum(f.events for f in files),
                "files": [msgspec.to_builtins(f) for f in files],
            }
        )
        return
    if not files:
        console.print(f"no spill files in {escape(str(folder))}: nothing is waiting")
        return
    for f in files:
        state = "[green]running[/]" if f.alive else "[yellow]exited — run `datatrail flush`[/]"
        console.print(f"{escape(f.path)}  pid {f.pid} {state}  {f.events:,} events")
    console.print(f"{sum(f.events for f in files):,} events waiting")


# -- migrate -------------------------------------------------------------------------------


@guarded
def migrate_command(
    source: str = typer.Option(
        ..., "--from", help="Source store: sqlite:///PATH, a folder, or a URL."
    ),
    target: str = typer.Option(..., "--to", help="Empty target store, e.g. postgresql://…"),
    home: Path | None = HomeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Copy a trail with its ledger to another store; the target verifies with the same root."""
    from datatrail.store._copy import copy_trail

    src = open_store(_store_url(source), create=False)
    key_home = _key_home(home) if home is not None else None
    if key_home is None and "://" not in source:
        folder = Path(source).expanduser().resolve()
        key_home = Home(path=folder if folder.is_dir() else folder.parent, url=_store_url(source))
    if key_home is None:
        key_home = _key_home(None)
    try:
        dst = _writable(target, key_home, create=True)
        try:
            with progress_bar("migrating", enabled=not as_json and src.size() > 20_000) as update:
                copied = copy_trail(src, dst, update)  # type: ignore[arg-type]
            root = dst.root().hex() if copied else None
        finally:
            dst.close()
        source_root = src.root().hex() if copied else None
    finally:
        src.close()
    result: dict[str, Any] = {"entries": copied, "root": root, "source_root": source_root}
    if as_json:
        emit_json(result)
        return
    console.print(f"copied {copied:,} entries; root {root}")
    console.print("run `datatrail verify --trail TARGET` to check the copy")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)
    app.command("flush")(flush_command)
    app.add_typer(spill_app, name="spill")
    app.command("migrate")(migrate_command)
