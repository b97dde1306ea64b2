"""The demo pipeline: raw CSV files → clean → join → aggregate → report.

A realistic small nightly job over orders, customers and products. Every
step is an ordinary pandas function with ``@datatrail.track``; the top-level
``datatrail.run`` gives the parameters; ``enrich`` calls ``join`` twice, so
one step is nested in another. Loading and saving are tracked too, so the
lineage reaches from the report file back to the raw files.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import datatrail

REGIONS = ("north", "south", "east", "west")
CATEGORIES = ("books", "garden", "kitchen", "toys")


# datatrail: untracked (writes the demo's raw input files)
def write_raw_data(folder: Path, *, seed: int = 20261120, orders: int = 2000) -> dict[str, Path]:
    """Write the raw CSV files (deterministic for a seed); returns their paths."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    customers = folder / "customers.csv"
    products = folder / "products.csv"
    order_file = folder / "orders.csv"
    with customers.open("w") as fh:
        fh.write("customer_id,name,email,region\n")
        for i in range(1, 201):
            fh.write(f"{i},Customer {i},customer{i}@example.com,{rng.choice(REGIONS)}\n")
    with products.open("w") as fh:
        fh.write("product_id,category,unit_price\n")
        for i in range(1, 51):
            fh.write(f"{i},{rng.choice(CATEGORIES)},{rng.randint(200, 9900) / 100:.2f}\n")
    with order_file.open("w") as fh:
        fh.write("order_id,customer_id,product_id,quantity,status,day\n")
        for i in range(1, orders + 1):
            status = rng.choices(("paid", "refunded", "cancelled"), weights=(90, 6, 4))[0]
            quantity = rng.randint(1, 5) if rng.random() > 0.01 else -1  # a few bad rows to clean
            fh.write(
                f"{i},{rng.randint(1, 200)},{rng.randint(1, 50)},{quantity},{status},2026-11-{rng.randint(1, 20):02d}\n"
            )
    return {"orders": order_file, "customers": customers, "products": products}


def _pd() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - the demo needs the pandas extra
        raise datatrail.DatatrailError(
            "the demo needs pandas and pyarrow: pip install 'datatrail[pandas]'"
        ) from None
    return pd


@datatrail.track
def load(path: Path) -> Any:
    """Read a raw CSV file."""
    return _pd().read_csv(path)


@datatrail.track
def clean(orders: Any, min_quantity: int = 1, statuses: tuple[str, ...] = ("paid",)) -> Any:
    """Drop cancelled or refunded orders and rows with impossible quantities."""
    keep = orders[(orders["quantity"] >= min_quantity) & orders["status"].isin(list(statuses))]
    return keep.reset_index(drop=True)


@datatrail.track
def join(left: Any, right: Any, on: str) -> Any:
    """Inner join of two frames on one key."""
    return left.merge(right, on=on, how="inner", validate="many_to_one")


@datatrail.track
def enrich(orders: Any, customers: Any, products: Any) -> Any:
    """Attach customer region and product price; amounts per order. Calls ``join`` twice."""
    with_customers = join(orders, customers[["customer_id", "region"]], on="customer_id")
    full = join(with_customers, products, on="product_id")
    full["amount"] = (full["quantity"] * full["unit_price"]).round(2)
    return full


@datatrail.track
def aggregate(enriched: Any, by: str = "region") -> Any:
    """Revenue, orders and average basket per group."""
    grouped = enriched.groupby(by, sort=True).agg(
        revenue=("amount", "sum"), orders=("order_id", "count"), avg_amount=("amount", "mean")
    )
    return grouped.round(2).reset_index()


@datatrail.track
def build_report(summary: Any, title: str) -> Any:
    """Rank the groups and add each one's share of revenue."""
    report = summary.sort_values("revenue", ascending=False).reset_index(drop=True)
    report["share"] = (report["revenue"] / report["revenue"].sum()).round(4)
    report.insert(0, "report", title)
    return report


@datatrail.track
def save(frame: Any, path: Path) -> None:
    """Write a frame as CSV (the path appears during the call, so it is recorded as an output)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def nightly(
    raw: dict[str, Path], out: Path, *, day: str = "2026-11-20", min_quantity: int = 1
) -> Path:
    """The whole pipeline as one run with parameters; returns the report path."""
    with datatrail.run("nightly-orders", params={"day": day, "min_quantity": min_quantity}) as r:
        orders = load(raw["orders"])
        customers = load(raw["customers"])
        products = load(raw["products"])
        cleaned = clean(orders, min_quantity=min_quantity)
        enriched = enrich(cleaned, customers, products)
        summary = aggregate(enriched, by="region")
        report = build_report(summary, title=f"Revenue by region, {day}")
        report_path = out / "report.csv"
        save(report, report_path)
        r.output(report_path)
    return report_path
