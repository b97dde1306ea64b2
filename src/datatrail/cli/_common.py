"""What every command shares: opening the trail, printing, errors, progress."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from datatrail.errors import DatatrailError, KeyFileError, StoreError
from datatrail.lineage import Trail
from datatrail.store import Store, open_store

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CHECK_FAILED",
    "JsonOpt",
    "TrailOpt",
    "console",
    "emit_json",
    "err_console",
    "fail",
    "guarded",
    "open_trail",
    "progress_bar",
    "run_app",
    "signing_store",
]

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
TrailOpt = typer.Option(
    None,
    "--trail",
    help="Trail folder (.datatrail), store file or URL. Default: DATATRAIL_URL or the nearest .datatrail/.",
    envvar="DATATRAIL_TRAIL",
)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (the stable shapes documented in docs/cli.md)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print an error on stderr; return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def open_trail(trail: str | None) -> Trail:
    """Open the trail named by ``--trail`` (or the default one)."""
    if trail is not None and "://" not in trail and not Path(trail).exists():
        raise fail(f"{trail}: no such trail folder or store file")
    return Trail(trail)


def signing_store(t: Trail, action: str) -> Store:
    """The trail's store opened again with its signing key, for commands that append.

    ``action`` names what needs the key, for the error: "erasing", "changing the policy".
    """
    if t.home is None:  # pragma: no cover - open_trail always opens by path or URL
        raise StoreError("this trail has no folder, so no signing key")
    signer = t.home.signer()
    if signer is None:
        raise KeyFileError(
            f"{action} needs the trail's signing key, and {t.home.signing_key} does not exist"
        )
    return open_store(t.home.url, create=False, signer=signer)


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields ``update(done, total)``."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Wrap a command so a datatrail error prints its message and exits 2 (signature kept)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DatatrailError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def run_app(app: typer.Typer) -> None:
    """Run the app; exit with the command's code."""
    try:
        code = app(standalone_mode=False)
    except DatatrailError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(EXIT_BAD_INPUT)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors from the parser (typer ships its own copy of click): show, exit 2.
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            sys.exit(EXIT_BAD_INPUT)
        raise
    sys.exit(code if isinstance(code, int) else 0)
