"""What changes between two versions of a contract, and whether consumers survive it.

The rule is one: a change that weakens a promise a consumer may rely on is
breaking (a column removed or retyped to a type its readers cannot widen to,
nulls newly allowed, new allowed values, a looser range, uniqueness dropped,
staler data allowed); a change that adds a column or tightens a promise is
backward-compatible. Mode, description and declared lineage are informational.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from datatrail.contracts._evaluate import _WIDER
from datatrail.contracts._spec import ColumnSpec, Contract, parse_duration

__all__ = ["Change", "ContractDiff", "diff_contracts"]

Verdict = Literal["backward-compatible", "breaking"]


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One difference between two contracts."""

    kind: str
    column: str | None = None
    before: Any = None
    after: Any = None
    breaking: bool
    message: str


class ContractDiff(msgspec.Struct, frozen=True, kw_only=True):
    """The changes from one contract version to another and the verdict."""

    dataset: str
    before: int | str | None
    after: int | str | None
    verdict: Verdict
    changes: list[Change]
    consumers: list[str] = []
    """Jobs and datasets downstream of the dataset (from lineage), who a breaking change hits."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _looser(before: Any, after: Any, *, upper: bool) -> bool:
    """Whether a bound moved so more values pass (None is unbounded)."""
    if after is None:
        return before is not None
    if before is None:
        return False
    try:
        return bool(after > before) if upper else bool(after < before)
    except TypeError:
        return str(after) != str(before)


def _column_changes(old: ColumnSpec, new: ColumnSpec) -> list[Change]:
    name = old.name
    out: list[Change] = []
    if old.type != new.type:
        widened = old.type is not None and new.type in _WIDER.get(old.type, ())
        dropped = new.type is None
        breaking = dropped or (old.type is not None and not widened)
        how = (
            "widened"
            if widened
            else "no longer declared"
            if dropped
            else "first declared"
            if old.type is None
            else "changed"
        )
        out.append(
            Change(
                kind="type",
                column=name,
                before=old.type,
                after=new.type,
                breaking=breaking,
                message=f"column {name!r}: type {how} ({old.type} -> {new.type})",
            )
        )
    if old.nullable != new.nullable:
        out.append(
            Change(
                kind="nullable",
                column=name,
                before=old.nullable,
                after=new.nullable,
                breaking=new.nullable,
                message=f"column {name!r}: "
                + ("may now hold nulls" if new.nullable else "no longer holds nulls"),
            )
        )
    if old.unique != new.unique:
        out.append(
            Change(
                kind="unique",
                column=name,
                before=old.unique,
                after=new.unique,
                breaking=old.unique,
                message=f"column {name!r}: "
                + ("values are no longer unique" if old.unique else "values are now unique"),
            )
        )
    if old.allowed != new.allowed:
        before = set(map(repr, old.allowed)) if old.allowed is not None else None
        after = set(map(repr, new.allowed)) if new.allowed is not None else None
        added = None if after is None else (after - before if before is not None else after)
        breaking = before is not None and (after is None or bool(added))
        out.append(
            Change(
                kind="allowed",
                column=name,
                before=old.allowed,
                after=new.allowed,
                breaking=breaking,
                message=f"column {name!r}: allowed values "
                + ("widened" if breaking else "narrowed or first declared"),
            )
        )
    if old.max_null_rate != new.max_null_rate:
        loose = _looser(old.max_null_rate, new.max_null_rate, upper=True)
        out.append(
            Change(
                kind="max_null_rate",
                column=name,
                before=old.max_null_rate,
                after=new.max_null_rate,
                breaking=loose,
                message=f"column {name!r}: null rate limit {old.max_null_rate} -> {new.max_null_rate}",
            )
        )
    for key, upper in (("min", False), ("max", True)):
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            loose = _looser(a, b, upper=upper)
            out.append(
                Change(
                    kind=key,
                    column=name,
                    before=a,
                    after=b,
                    breaking=loose,
                    message=f"column {name!r}: {key} {a!r} -> {b!r}"
                    + (" (looser)" if loose else " (tighter)"),
                )
            )
    return out


def diff_contracts(
    old: Contract,
    new: Contract,
    *,
    before: int | str | None = None,
    after: int | str | None = None,
    consumers: list[str] | None = None,
) -> ContractDiff:
    """The changes from ``old`` to ``new`` with a compatibility verdict."""
    changes: list[Change] = []
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    for name, spec in old_cols.items():
        if name not in new_cols:
            changes.append(
                Change(
                    kind="column_removed",
                    column=name,
                    before=spec.type,
                    breaking=True,
                    message=f"column {name!r} removed",
                )
            )
        else:
            changes.extend(_column_changes(spec, new_cols[name]))
    for name, spec in new_cols.items():
        if name not in old_cols:
            # A new column breaks no reader, unless the old contract forbade extra columns and
            # readers relied on the exact set (still readable: informational).
            changes.append(
                Change(
                    kind="column_added",
                    column=name,
                    after=spec.type,
                    breaking=False,
                    message=f"column {name!r} added",
                )
            )
    if old.extra_columns != new.extra_columns:
        changes.append(
            Change(
                kind="extra_columns",
                before=old.extra_columns,
                after=new.extra_columns,
                breaking=new.extra_columns == "allow",
                message=f"extra columns {old.extra_columns} -> {new.extra_columns}",
            )
        )
    a_min = old.rows.min if old.rows else None
    b_min = new.rows.min if new.rows else None
    a_max = old.rows.max if old.rows else None
    b_max = new.rows.max if new.rows else None
    if (a_min, a_max) != (b_min, b_max):
        loose = _looser(a_min, b_min, upper=False) or _looser(a_max, b_max, upper=True)
        changes.append(
            Change(
                kind="rows",
                before={"min": a_min, "max": a_max},
                after={"min": b_min, "max": b_max},
                breaking=loose,
                message=f"row count range [{a_min}, {a_max}] -> [{b_min}, {b_max}]",
            )
        )
    a_fresh, b_fresh = old.freshness, new.freshness
    if a_fresh != b_fresh:
        if a_fresh is None:
            loose = False
        elif b_fresh is None:
            loose = True
        else:
            loose = a_fresh.column != b_fresh.column or parse_duration(
                b_fresh.max_age
            ) > parse_duration(a_fresh.max_age)
        changes.append(
            Change(
                kind="freshness",
                before=msgspec.to_builtins(a_fresh),
                after=msgspec.to_builtins(b_fresh),
                breaking=loose,
                message="freshness " + ("loosened" if loose else "tightened or first declared"),
            )
        )
    if old.mode != new.mode:
        changes.append(
            Change(
                kind="mode",
                before=old.mode,
                after=new.mode,
                breaking=False,
                message=f"failure mode {old.mode} -> {new.mode}",
            )
        )
    if old.lineage != new.lineage:
        changes.append(
            Change(
                kind="lineage",
                before=msgspec.to_builtins(old.lineage),
                after=msgspec.to_builtins(new.lineage),
                breaking=False,
                message="declared lineage changed",
            )
        )
    verdict: Verdict = "breaking" if any(c.breaking for c in changes) else "backward-compatible"
    return ContractDiff(
        dataset=new.dataset,
        before=before,
        after=after,
        verdict=verdict,
        changes=changes,
        consumers=consumers or [],
    )
