"""The ``datatrail`` command: thin, parses, calls the library, prints (rich) or ``--json``.

Exit codes: 0 success; 1 a check failed (``verify``, ``verify-bundle``); 2 bad
input (unknown node, unreadable file, not a store, a newer schema, ...).
"""

from __future__ import annotations

import importlib

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

# Command groups, each in its own module with a register(app) function.
_COMMAND_MODULES = ("_core", "_audit")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"datatrail.cli.{_name}").register(app)


def main() -> None:
    """Entry point of the ``datatrail`` console script."""
    run_app(app)
