"""Run every benchmark and print one table: ours, baseline, ratio, target.

``python -m benchmarks`` runs all of them; ``python -m benchmarks hashing ledger``
runs the named ones; ``--quick`` shrinks sizes for a smoke run; ``--json FILE``
also writes the rows for machines. Before each group the kernel's dirty pages
are flushed (outside any timing), so no group pays for an earlier one's writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks._harness import Result, settle


def _modules() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default all: {', '.join(_modules())})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", dest="json_path", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    names = args.names or _modules()
    console = Console(width=220)
    rows: list[tuple[str, Result]] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        flushed = settle()
        console.print(f"[bold]running[/] {name} … [dim](disk settled in {flushed:.1f}s)[/]")
        t0 = time.perf_counter()
        for result in module.run(quick=args.quick):
            rows.append((name, result))
            console.print(
                f"  {result.name}: {_fmt(result.ours)} {result.unit}  ({'ok' if result.ok else 'MISSED'} {result.target})"
            )
        console.print(f"  [dim]{name} took {time.perf_counter() - t0:.1f}s[/]")
    table = Table(title=f"datatrail benchmarks ({time.perf_counter() - started:.0f}s)")
    for col in (
        "group",
        "benchmark",
        "ours",
        "unit",
        "baseline",
        "baseline value",
        "ratio",
        "target",
        "met",
    ):
        table.add_column(col)
    for number, (group, r) in enumerate(rows, start=1):
        table.add_row(
            group,
            f"{r.name} [{number}]" if r.note else r.name,
            _fmt(r.ours),
            r.unit,
            r.baseline_name or "-",
            _fmt(r.baseline),
            f"{r.ratio:.1f}×" if r.ratio is not None else "-",
            r.target,
            "yes" if r.ok else "NO",
        )
    console.print(table)
    # What each figure means and how it was taken: the notes the rows carry, by row number.
    for number, (_, r) in enumerate(rows, start=1):
        if r.note:
            console.print(f"  [{number}] {r.note}", highlight=False, markup=False)
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps([{"group": g, **dataclasses.asdict(r)} for g, r in rows], indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
