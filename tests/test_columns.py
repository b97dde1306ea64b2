"""Column lineage from SQL: each shape against hand-written expectations (OpenLineage semantics).

Expectations are written as ``{output column: {"table.column": {"TYPE/SUBTYPE", ...}}}``;
a ``+masked`` suffix marks a masking transformation.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

import datatrail
from datatrail.columns import SQLLineageError, analyze, column_lineage, tracked_cursor
from datatrail.errors import NodeNotFound, UsageError
from datatrail.model import DatasetRef


def lineage(sql: str, **kwargs) -> dict[str, dict[str, set[str]]]:
    result = analyze(sql, **kwargs)
    out: dict[str, dict[str, set[str]]] = {}
    for column, contrib in result.fields.items():
        out[column] = {
            f"{table}.{field}": {
                f"{t.type}/{t.subtype}" + ("+masked" if t.masking else "") for t in transforms
            }
            for (table, field), transforms in contrib.items()
        }
    return out


SHAPES: dict[str, tuple[str, dict | None, dict[str, dict[str, set[str]]]]] = {
    "projection, rename and filter": (
        "SELECT o.id AS order_id, o.amount FROM orders o WHERE o.status = 'paid'",
        None,
        {
            "order_id": {"orders.id": {"DIRECT/IDENTITY"}, "orders.status": {"INDIRECT/FILTER"}},
            "amount": {"orders.amount": {"DIRECT/IDENTITY"}, "orders.status": {"INDIRECT/FILTER"}},
        },
    ),
    "expressions transform": (
        "SELECT UPPER(c.name) AS name, c.price * c.qty AS total, CAST(c.day AS DATE) AS day "
        "FROM carts c",
        None,
        {
            "name": {"carts.name": {"DIRECT/TRANSFORMATION"}},
            "total": {
                "carts.price": {"DIRECT/TRANSFORMATION"},
                "carts.qty": {"DIRECT/TRANSFORMATION"},
            },
            "day": {"carts.day": {"DIRECT/TRANSFORMATION"}},
        },
    ),
    "hashing masks": (
        "SELECT SHA256(u.email) AS email_hash, MD5(u.phone) AS phone_hash, u.id FROM users u",
        None,
        {
            "email_hash": {"users.email": {"DIRECT/TRANSFORMATION+masked"}},
            "phone_hash": {"users.phone": {"DIRECT/TRANSFORMATION+masked"}},
            "id": {"users.id": {"DIRECT/IDENTITY"}},
        },
    ),
    "aggregate with group by and having": (
        "SELECT region, SUM(amount) AS revenue, COUNT(id) AS n FROM sales "
        "GROUP BY region HAVING SUM(amount) > 100",
        None,
        {
            "region": {
                "sales.region": {"DIRECT/IDENTITY", "INDIRECT/GROUP_BY"},
                "sales.amount": {"INDIRECT/FILTER"},
            },
            "revenue": {
                "sales.amount": {"DIRECT/AGGREGATION", "INDIRECT/FILTER"},
                "sales.region": {"INDIRECT/GROUP_BY"},
            },
            "n": {
                "sales.id": {"DIRECT/AGGREGATION+masked"},
                "sales.region": {"INDIRECT/GROUP_BY"},
                "sales.amount": {"INDIRECT/FILTER"},
            },
        },
    ),
    "inner join": (
        "SELECT c.name, o.amount FROM orders o JOIN customers c ON o.customer_id = c.id",
        None,
        {
            "name": {
                "customers.name": {"DIRECT/IDENTITY"},
                "orders.customer_id": {"INDIRECT/JOIN"},
                "customers.id": {"INDIRECT/JOIN"},
            },
            "amount": {
                "orders.amount": {"DIRECT/IDENTITY"},
                "orders.customer_id": {"INDIRECT/JOIN"},
                "customers.id": {"INDIRECT/JOIN"},
            },
        },
    ),
    "left join with using and a schema": (
        "SELECT name, amount FROM orders LEFT JOIN customers USING (customer_id)",
        {
            "orders": {"customer_id": "int", "amount": "int"},
            "customers": {"customer_id": "int", "name": "text"},
        },
        {
            "name": {
                "customers.name": {"DIRECT/IDENTITY"},
                "orders.customer_id": {"INDIRECT/JOIN"},
                "customers.customer_id": {"INDIRECT/JOIN"},
            },
            "amount": {
                "orders.amount": {"DIRECT/IDENTITY"},
                "orders.customer_id": {"INDIRECT/JOIN"},
                "customers.customer_id": {"INDIRECT/JOIN"},
            },
        },
    ),
    "cte": (
        "WITH paid AS (SELECT id, amount FROM orders WHERE status = 'paid') "
        "SELECT p.id, p.amount * 2 AS doubled FROM paid p",
        None,
        {
            "id": {"orders.id": {"DIRECT/IDENTITY"}, "orders.status": {"INDIRECT/FILTER"}},
            "doubled": {
                "orders.amount": {"DIRECT/TRANSFORMATION"},
                "orders.status": {"INDIRECT/FILTER"},
            },
        },
    ),
    "chained ctes compose transformations": (
        "WITH a AS (SELECT k, v + 1 AS w FROM t), b AS (SELECT k, SUM(w) AS s FROM a GROUP BY k) "
        "SELECT b.k, b.s FROM b",
        None,
        {
            "k": {"t.k": {"DIRECT/IDENTITY", "INDIRECT/GROUP_BY"}},
            "s": {"t.v": {"DIRECT/AGGREGATION"}, "t.k": {"INDIRECT/GROUP_BY"}},
        },
    ),
    "derived table": (
        "SELECT s.region, s.total FROM (SELECT region, SUM(amount) AS total FROM sales "
        "GROUP BY region) AS s WHERE s.total > 10",
        None,
        {
            "region": {
                "sales.region": {"DIRECT/IDENTITY", "INDIRECT/GROUP_BY"},
                "sales.amount": {"INDIRECT/FILTER"},
            },
            "total": {
                "sales.amount": {"DIRECT/AGGREGATION", "INDIRECT/FILTER"},
                "sales.region": {"INDIRECT/GROUP_BY"},
            },
        },
    ),
    "scalar subquery": (
        "SELECT c.id, (SELECT MAX(o.amount) FROM orders o) AS top FROM customers c",
        None,
        {
            "id": {"customers.id": {"DIRECT/IDENTITY"}},
            "top": {"orders.amount": {"DIRECT/AGGREGATION"}},
        },
    ),
    "in-subquery filter": (
        "SELECT c.name FROM customers c WHERE c.id IN (SELECT o.customer_id FROM orders o "
        "WHERE o.amount > 100)",
        None,
        {
            "name": {
                "customers.name": {"DIRECT/IDENTITY"},
                "customers.id": {"INDIRECT/FILTER"},
                "orders.customer_id": {"INDIRECT/FILTER"},
                "orders.amount": {"INDIRECT/FILTER"},
            },
        },
    ),
    "ranking window": (
        "SELECT e.name, ROW_NUMBER() OVER (PARTITION BY e.dept ORDER BY e.salary DESC) AS rank "
        "FROM employees e",
        None,
        {
            "name": {"employees.name": {"DIRECT/IDENTITY"}},
            "rank": {
                "employees.dept": {"INDIRECT/WINDOW"},
                "employees.salary": {"INDIRECT/WINDOW"},
            },
        },
    ),
    "aggregate window": (
        "SELECT e.id, SUM(e.salary) OVER (PARTITION BY e.dept) AS dept_total FROM employees e",
        None,
        {
            "id": {"employees.id": {"DIRECT/IDENTITY"}},
            "dept_total": {
                "employees.salary": {"DIRECT/AGGREGATION"},
                "employees.dept": {"INDIRECT/WINDOW"},
            },
        },
    ),
    "case when": (
        "SELECT CASE WHEN o.amount > 100 THEN o.vip_rate ELSE o.rate END AS rate FROM orders o",
        None,
        {
            "rate": {
                "orders.amount": {"INDIRECT/CONDITIONAL"},
                "orders.vip_rate": {"DIRECT/TRANSFORMATION"},
                "orders.rate": {"DIRECT/TRANSFORMATION"},
            }
        },
    ),
    "union all": (
        "SELECT id, email FROM customers UNION ALL SELECT id, contact FROM leads",
        None,
        {
            "id": {"customers.id": {"DIRECT/IDENTITY"}, "leads.id": {"DIRECT/IDENTITY"}},
            "email": {
                "customers.email": {"DIRECT/IDENTITY"},
                "leads.contact": {"DIRECT/IDENTITY"},
            },
        },
    ),
    "select star with a known schema": (
        "SELECT * FROM products WHERE price > 0",
        {"products": {"id": "int", "price": "double", "name": "text"}},
        {
            "id": {"products.id": {"DIRECT/IDENTITY"}, "products.price": {"INDIRECT/FILTER"}},
            "price": {"products.price": {"DIRECT/IDENTITY", "INDIRECT/FILTER"}},
            "name": {"products.name": {"DIRECT/IDENTITY"}, "products.price": {"INDIRECT/FILTER"}},
        },
    ),
    "order by sorts": (
        "SELECT p.name FROM products p ORDER BY p.price",
        None,
        {"name": {"products.name": {"DIRECT/IDENTITY"}, "products.price": {"INDIRECT/SORT"}}},
    ),
    "coalesce": (
        "SELECT COALESCE(c.nickname, c.name) AS label FROM customers c",
        None,
        {
            "label": {
                "customers.nickname": {"DIRECT/TRANSFORMATION"},
                "customers.name": {"DIRECT/TRANSFORMATION"},
            }
        },
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_sql_shape_matches_hand_written_lineage(shape: str) -> None:
    sql, schema, expected = SHAPES[shape]
    assert lineage(sql, schema=schema) == expected


def test_insert_select_maps_to_the_listed_target_columns() -> None:
    result = analyze(
        "INSERT INTO mart.daily (day, n) SELECT o.day, COUNT(*) FROM orders o GROUP BY o.day"
    )
    assert result.kind == "insert" and result.target == "mart.daily"
    assert result.inputs == ["orders"]
    assert lineage(
        "INSERT INTO mart.daily (day, n) SELECT o.day, COUNT(*) FROM orders o GROUP BY o.day"
    ) == {
        "day": {"orders.day": {"DIRECT/IDENTITY", "INDIRECT/GROUP_BY"}},
        "n": {"orders.day": {"INDIRECT/GROUP_BY"}},
    }


def test_insert_without_a_column_list_uses_the_target_schema() -> None:
    schema = {"target": {"a": "int", "b": "int"}, "src": {"x": "int", "y": "int"}}
    assert lineage("INSERT INTO target SELECT x, y + 1 FROM src", schema=schema) == {
        "a": {"src.x": {"DIRECT/IDENTITY"}},
        "b": {"src.y": {"DIRECT/TRANSFORMATION"}},
    }


def test_create_table_as_names_its_target() -> None:
    sql = "CREATE TABLE top_customers AS SELECT c.id, c.name FROM customers c WHERE c.score > 9"
    result = analyze(sql)
    assert (result.kind, result.target) == ("create", "top_customers")
    assert lineage(sql) == {
        "id": {"customers.id": {"DIRECT/IDENTITY"}, "customers.score": {"INDIRECT/FILTER"}},
        "name": {"customers.name": {"DIRECT/IDENTITY"}, "customers.score": {"INDIRECT/FILTER"}},
    }


def test_dialect_specific_sql_parses_with_its_dialect() -> None:
    sql = "SELECT `o`.`id`, IF(`o`.`paid`, `o`.`amount`, 0) AS due FROM `shop`.`orders` AS `o`"
    assert lineage(sql, dialect="mysql") == {
        "id": {"shop.orders.id": {"DIRECT/IDENTITY"}},
        "due": {
            "shop.orders.paid": {"INDIRECT/CONDITIONAL"},
            "shop.orders.amount": {"DIRECT/TRANSFORMATION"},
        },
    }


@pytest.mark.parametrize(
    ("sql", "schema", "message"),
    [
        ("SELECT name FROM a JOIN b ON a.id = b.id", None, "could come from any of a, b"),
        ("SELECT * FROM a", None, "needs the columns"),
        ("SELECT FROM WHERE (", None, "does not parse"),
        ("SELECT 1; SELECT 2", None, "one SQL statement, found 2"),
        ("UPDATE t SET x = 1", None, "not UPDATE"),
        ("INSERT INTO t VALUES (1, 2)", None, "without a SELECT"),
        ("", None, "empty"),
    ],
)
def test_sql_it_cannot_read_is_refused_with_a_reason(sql: str, schema, message: str) -> None:
    with pytest.raises(SQLLineageError, match=message):
        analyze(sql, schema=schema)


# -- recording ---------------------------------------------------------------------


def _facet_validator(testdata):
    import jsonschema
    from referencing import Registry, Resource

    spec = testdata / "openlineage" / "spec"
    core = json.loads((spec / "OpenLineage.json").read_text())
    facet = json.loads((spec / "facets" / "ColumnLineageDatasetFacet.json").read_text())
    registry = Registry().with_resources(
        [(core["$id"], Resource.from_contents(core)), (facet["$id"], Resource.from_contents(facet))]
    )
    return jsonschema.Draft202012Validator(facet, registry=registry)


def test_sql_in_a_run_records_the_openlineage_facet_and_the_run_io(trail, testdata) -> None:
    orders = DatasetRef(namespace="postgres://db:5432", name="shop.public.orders")
    with datatrail.run("build-mart") as r:
        result = datatrail.sql(
            "INSERT INTO mart (customer_id, revenue) "
            "SELECT customer_id, SUM(amount) FROM orders GROUP BY customer_id",
            dialect="postgres",
            inputs=[orders],
            namespace="postgres://db:5432",
            database="shop",
            default_schema="public",
        )
    assert result.output == "dataset:postgres://db:5432:shop.public.mart"
    t = trail()
    rows = t.store.query(
        "SELECT subject, data FROM records WHERE topic = 'column_lineage' ORDER BY idx"
    )
    assert len(rows) == 1
    subject, data = rows[0][0], json.loads(rows[0][1])
    assert subject == "dataset:postgres://db:5432:shop.public.mart"
    assert data["run_id"] == r.run_id and data["dialect"] == "postgres"
    assert data["fields"]["revenue"]["inputFields"] == [
        {
            "namespace": "postgres://db:5432",
            "name": "shop.public.orders",
            "field": "amount",
            "transformations": [
                {
                    "type": "DIRECT",
                    "subtype": "AGGREGATION",
                    "description": "SUM(amount)",
                    "masking": False,
                }
            ],
        },
        {
            "namespace": "postgres://db:5432",
            "name": "shop.public.orders",
            "field": "customer_id",
            "transformations": [
                {
                    "type": "INDIRECT",
                    "subtype": "GROUP_BY",
                    "description": "GROUP BY customer_id",
                    "masking": False,
                }
            ],
        },
    ]
    facet = {
        "columnLineage": {
            "_producer": "https://example.com/datatrail",
            "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
            "fields": data["fields"],
        }
    }
    errors = list(_facet_validator(testdata).iter_errors(facet))
    assert errors == []
    run = t.run(r.run_id)
    assert [i.dataset for i in run.inputs] == ["dataset:postgres://db:5432:shop.public.orders"]
    assert [o.dataset for o in run.outputs] == ["dataset:postgres://db:5432:shop.public.mart"]
    assert t.upstream("dataset:postgres://db:5432:shop.public.mart").nodes[-1].id == (
        "dataset:postgres://db:5432:shop.public.orders"
    )


def test_a_select_needs_an_output(trail) -> None:
    with pytest.raises(UsageError, match="pass output="):
        datatrail.sql("SELECT a.x FROM a")


def test_sql_outside_a_run_opens_its_own(trail) -> None:
    datatrail.sql("SELECT a.x FROM a", output="b")
    t = trail()
    runs = t.runs()
    assert [r.job_name for r in runs] == ["sql:b"]
    assert [o.dataset for o in t.run(runs[0].run_id).outputs] == ["dataset:default:b"]


def test_tracked_sqlite_cursor_records_each_statement(trail, tmp_path) -> None:
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    cur = tracked_cursor(conn.cursor())
    with datatrail.run("sqlite-job") as r:
        cur.execute("CREATE TABLE orders (id INTEGER, customer TEXT, amount REAL)")
        cur.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, "a", 2.0), (2, "b", 3.5)])
        cur.execute(
            "CREATE TABLE totals AS SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer"
        )
        cur.execute("CREATE TABLE copy AS SELECT * FROM orders WHERE amount > ?", (1,))
        rows = cur.execute("SELECT customer, total FROM totals ORDER BY customer").fetchall()
    conn.close()
    assert rows == [("a", 2.0), ("b", 3.5)]
    assert [x.output for x in cur.recorded] == [
        f"dataset:sqlite:{db}:totals",
        f"dataset:sqlite:{db}:copy",
        None,
    ]
    # SELECT * resolved through the database's own table_info.
    assert sorted(cur.recorded[1].fields) == ["amount", "customer", "id"]
    t = trail()
    run = t.run(r.run_id)
    assert {o.dataset for o in run.outputs} == {
        f"dataset:sqlite:{db}:totals",
        f"dataset:sqlite:{db}:copy",
    }
    assert f"dataset:sqlite:{db}:orders" in {i.dataset for i in run.inputs}
    graph = column_lineage(t, f"sqlite:{db}:totals:total")
    assert [n.id for n in graph.nodes] == [
        f"sqlite:{db}:totals:total",
        f"sqlite:{db}:orders:amount",
        f"sqlite:{db}:orders:customer",
    ]


def test_tracked_postgres_cursor_names_datasets_by_server_and_database(trail) -> None:
    from tests._pg import fresh_schema, require_postgres

    url = require_postgres()
    import psycopg

    with fresh_schema("cols") as schema, psycopg.connect(url, autocommit=True) as conn:
        cur = tracked_cursor(conn.cursor())
        with datatrail.run("pg-job"):
            cur.execute(f"CREATE SCHEMA {schema}")
            cur.execute(f"CREATE TABLE {schema}.src (id int, v int)")
            cur.execute(f"INSERT INTO {schema}.src VALUES (1, 2)")
            cur.execute(f"CREATE TABLE {schema}.dst AS SELECT id, v * 10 AS w FROM {schema}.src")
        info = conn.info
        ns = f"postgres://{info.host}:{info.port}"
        assert [x.output for x in cur.recorded] == [f"dataset:{ns}:{info.dbname}.{schema}.dst"]
        assert cur.recorded[0].fields["w"]["inputFields"][0]["name"] == (
            f"{info.dbname}.{schema}.src"
        )


# -- walking -------------------------------------------------------------------------


@pytest.fixture
def chain(trail):
    """raw.orders → staging.paid → mart.revenue, recorded by three statements in two runs."""
    with datatrail.run("staging"):
        datatrail.sql(
            "CREATE TABLE staging.paid AS SELECT o.id, o.customer, o.amount FROM raw.orders o "
            "WHERE o.status = 'paid'"
        )
    with datatrail.run("mart"):
        datatrail.sql(
            "CREATE TABLE mart.revenue AS SELECT p.customer, SUM(p.amount) AS revenue, "
            "SHA256(p.customer) AS customer_hash FROM staging.paid p GROUP BY p.customer"
        )
    return trail()


def test_upstream_walk_reaches_raw_columns_through_two_statements(chain) -> None:
    graph = column_lineage(chain, "default:mart.revenue:revenue")
    depth = {n.id: n.depth for n in graph.nodes}
    assert depth == {
        "default:mart.revenue:revenue": 0,
        "default:staging.paid:amount": 1,
        "default:staging.paid:customer": 1,
        "default:raw.orders:amount": 2,
        "default:raw.orders:customer": 2,
        "default:raw.orders:status": 2,
    }
    edge = next(e for e in graph.edges if e.source == "default:staging.paid:amount")
    assert [t["subtype"] for t in edge.transformations] == ["AGGREGATION"]
    assert len(edge.runs) == 1


def test_direct_only_follows_values_not_filters(chain) -> None:
    graph = column_lineage(chain, "default:mart.revenue:revenue", direct_only=True)
    assert [n.id for n in graph.nodes] == [
        "default:mart.revenue:revenue",
        "default:staging.paid:amount",
        "default:raw.orders:amount",
    ]


def test_downstream_walk_and_depth_limit(chain) -> None:
    graph = column_lineage(chain, "default:raw.orders:status", direction="downstream", depth=1)
    assert [n.id for n in graph.nodes] == [
        "default:raw.orders:status",
        "default:staging.paid:amount",
        "default:staging.paid:customer",
        "default:staging.paid:id",
    ]
    direct = column_lineage(chain, "default:raw.orders:customer", direction="downstream", depth=1)
    assert [n.id for n in direct.nodes] == [
        "default:raw.orders:customer",
        "default:staging.paid:customer",
    ]
    deeper = column_lineage(chain, "default:raw.orders:customer", direction="downstream")
    hashed = next(e for e in deeper.edges if e.target == "default:mart.revenue:customer_hash")
    assert hashed.transformations[0]["masking"] is True
    assert graph.to_dict()["root"] == "default:raw.orders:status"


def test_unknown_column_and_bad_ids_are_clear_errors(chain) -> None:
    with pytest.raises(NodeNotFound, match="no column lineage recorded"):
        column_lineage(chain, "default:mart.revenue:nope")
    with pytest.raises(UsageError, match="NAMESPACE:NAME:COLUMN"):
        column_lineage(chain, "justaname")
    with pytest.raises(UsageError, match="direction"):
        column_lineage(chain, "default:mart.revenue:revenue", direction="sideways")  # type: ignore[arg-type]


def test_cli_column_lineage_json_and_errors(chain) -> None:
    from typer.testing import CliRunner

    from datatrail.cli import app

    runner = CliRunner()
    home = str(chain.home.path)
    result = runner.invoke(
        app, ["column-lineage", "default:mart.revenue:revenue", "--trail", home, "--json"]
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["root"] == "default:mart.revenue:revenue" and data["direction"] == "upstream"
    assert {n["id"] for n in data["nodes"] if n["depth"] == 2} == {
        "default:raw.orders:amount",
        "default:raw.orders:customer",
        "default:raw.orders:status",
    }
    result = runner.invoke(
        app,
        ["column-lineage", "default:raw.orders:amount", "--downstream", "--trail", home],
    )
    assert result.exit_code == 0 and "mart.revenue:revenue" in result.stdout
    result = runner.invoke(app, ["column-lineage", "default:nope:x", "--trail", home])
    assert result.exit_code == 2 and "no column lineage recorded" in result.stderr


def test_lineage_column_option_walks_the_same_graph(chain) -> None:
    from typer.testing import CliRunner

    from datatrail.cli import app

    runner = CliRunner()
    home = str(chain.home.path)
    args = ["default:mart.revenue:revenue", "--trail", home, "--json"]
    direct = runner.invoke(app, ["column-lineage", *args])
    via_lineage = runner.invoke(app, ["lineage", "--column", *args])
    assert via_lineage.exit_code == 0, via_lineage.stderr
    assert json.loads(via_lineage.stdout) == json.loads(direct.stdout)
    missing = runner.invoke(app, ["lineage", "--column", "default:nope:x", "--trail", home])
    assert missing.exit_code == 2 and "no column lineage recorded" in missing.stderr
