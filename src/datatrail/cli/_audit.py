"""Audit commands: verify, erase, prove, verify-bundle, checkpoint, consistency, key."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the audit commands to the CLI."""
    return
