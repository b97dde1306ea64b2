"""The ``datatrail`` command: thin, parses, calls the library, prints (rich) or ``--json``.

Exit codes: 0 success; 1 a check failed (``verify``, ``verify-bundle``); 2 bad
input (unknown node, unreadable file, not a store, a newer schema, ...).
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from datatrail.cli._common import run_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="datatrail",
    help="An audit-grade memory for data pipelines: provenance, lineage, tamper evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command groups, each a module of this package with a register(app) function; the
# core and audit groups first, the rest in name order. Modules import their heavy
# dependencies (the server, SQL parsing, ...) inside the commands, so --help stays fast.
_FIRST = ("_core", "_audit")


def _command_modules() -> list[str]:
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("_"))
    return [*_FIRST, *(name for name in found if name not in _FIRST)]


for _name in _command_modules():
    _module = importlib.import_module(f"datatrail.cli.{_name}")
    if hasattr(_module, "register"):
        _module.register(app)


def main() -> None:
    """Entry point of the ``datatrail`` console script."""
    run_app(app)
