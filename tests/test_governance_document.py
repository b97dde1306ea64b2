"""Policy documents: strict validation with located errors, durations, matching, explain."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from datatrail.errors import PolicyError
from datatrail.governance import (
    active_policy,
    apply_policy,
    explain_policy,
    load_policy,
    parse_duration,
    parse_policy,
)
from datatrail.store import init_home, open_store

GOOD = """\
version: 1
approvals: 0
classifications:
  pii: {description: personal data, removed_by: ["*anonymise*"]}
  public: {propagate: false}
datasets:
  - match: {namespace: file, name: "*/raw/*"}
    classifications: [pii]
    owners: [dpo@example.com]
    columns: {email: [pii]}
  - match: {namespace: file, name: "*/public/*"}
    classifications: [public]
roles:
  analyst: {}
  senior: {inherits: [analyst]}
  policy-admin: {}
principals:
  alice: {roles: [policy-admin]}
  bob: {roles: [senior], groups: [fraud]}
groups:
  fraud: {roles: [analyst]}
access:
  - id: analysts-read
    effect: allow
    actions: [read]
    roles: [analyst]
    when: {purpose: [fraud-investigation], hours: "00:00-24:00"}
    masks: {columns: {card: keep_last_4}, classifications: {pii: hash}}
  - id: no-contractors
    effect: deny
    actions: [read, export]
    groups: [fraud]
    classifications: [pii]
    when: {attributes: {contract: external}}
limits:
  - id: analyst-volume
    roles: [analyst]
    rows: 1000
    window: 1h
retention:
  - id: raw-kept
    match: {name: "*/raw/*"}
    keep_at_least: 30d
    delete_after: 1y
    clock: created
    action: delete
    mode: compliance
  - id: closed
    match: {classifications: [pii]}
    delete_after: 90d
    clock: event:account_closed
    action: review
notify:
  command: [cat]
"""


def test_a_good_policy_parses_into_its_parts() -> None:
    policy = parse_policy(GOOD, file="good.yaml")
    assert set(policy.classifications) == {"pii", "public"}
    assert policy.classifications["pii"].removed_by == ("*anonymise*",)
    assert policy.retention[0].keep_at_least == timedelta(days=30)
    assert policy.retention[0].delete_after == timedelta(days=365)
    assert policy.retention[1].clock == "event:account_closed"
    assert policy.access[0].when.hours == (0, 24 * 60)
    assert policy.access[0].mask_classifications == {"pii": "hash"}
    assert policy.limits[0].window == timedelta(hours=1)
    assert policy.notify is not None and policy.notify.command == ("cat",)
    assert len(policy.hash) == 64


def test_labels_owners_and_roles_come_from_matching() -> None:
    policy = parse_policy(GOOD)
    assert policy.labels_for("file", "/data/raw/orders.csv") == {"pii"}
    assert policy.labels_for("file", "/data/out/report.csv") == frozenset()
    assert policy.owners_for("file", "/data/raw/orders.csv") == ("dpo@example.com",)
    assert policy.roles_of("bob") == {"senior", "analyst"}
    assert policy.is_admin("alice") and not policy.is_admin("bob")


def test_the_hash_ignores_comments_and_layout() -> None:
    a = parse_policy(GOOD)
    b = parse_policy("# a comment\n" + GOOD.replace("approvals: 0", "approvals:   0"))
    c = parse_policy(GOOD.replace("rows: 1000", "rows: 1001"))
    assert a.hash == b.hash
    assert a.hash != c.hash


def test_a_folder_of_files_is_one_policy(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("classifications:\n  pii: {}\nroles:\n  analyst: {}\n")
    (tmp_path / "b.yaml").write_text(
        "access:\n  - id: r1\n    effect: allow\n    actions: [read]\n    roles: [analyst]\n"
        "    classifications: [pii]\n"
    )
    policy = load_policy(tmp_path)
    assert policy.access[0].classifications == ("pii",)
    # The stored text parses back to the same policy.
    assert parse_policy(policy.text).hash == policy.hash


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("1y", timedelta(days=365)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_durations(text: str, unit: timedelta) -> None:
    assert parse_duration(text) == unit


@pytest.mark.parametrize("bad", ["30", "d", "30 days", "-1d", "1.5d", ""])
def test_bad_durations_say_what_is_expected(bad: str) -> None:
    with pytest.raises(PolicyError, match="not understood"):
        parse_duration(bad)


def test_explain_renders_plain_sentences() -> None:
    text = explain_policy(parse_policy(GOOD))
    assert "Members of role analyst may read any dataset for fraud-investigation" in text
    assert "Data in datasets named */raw/* must be kept at least 30 days" in text
    assert "card values are shown only by their last 4 characters" in text
    assert "locked (compliance mode)" in text
    assert "refusal always wins" in text


# Ten and more kinds of bad document: each names file, line, column and place, and
# applying it changes nothing.
BAD = [
    ("unknown top key", GOOD.replace("approvals: 0", "aprovals: 0"), 2, "aprovals", "unknown key"),
    (
        "bad duration",
        GOOD.replace("delete_after: 90d", "delete_after: 90x"),
        None,
        "retention[1].delete_after",
        "not understood",
    ),
    (
        "unknown role",
        GOOD.replace("roles: [senior]", "roles: [seniour]"),
        None,
        "principals.bob.roles[0]",
        "unknown role 'seniour'",
    ),
    (
        "unknown classification",
        GOOD.replace("classifications: [public]", "classifications: [publik]"),
        None,
        "datasets[1].classifications[0]",
        "unknown classification",
    ),
    (
        "bad effect",
        GOOD.replace("effect: deny", "effect: refuse"),
        None,
        "access[1].effect",
        "allowed values",
    ),
    (
        "bad action",
        GOOD.replace("actions: [read, export]", "actions: [read, steal]"),
        None,
        "access[1].actions[1]",
        "allowed values",
    ),
    (
        "bad mask",
        GOOD.replace("card: keep_last_4", "card: blur"),
        None,
        "access[0].masks.columns",
        "allowed values",
    ),
    (
        "duplicate rule id",
        GOOD.replace("id: no-contractors", "id: analysts-read"),
        None,
        "access[1].id",
        "used twice",
    ),
    (
        "missing id",
        GOOD.replace("  - id: raw-kept\n    match", "  - match"),
        None,
        "retention[0]",
        "missing required key 'id'",
    ),
    (
        "bad clock",
        GOOD.replace("clock: created", "clock: yesterday"),
        None,
        "retention[0].clock",
        "clock 'yesterday'",
    ),
    (
        "keep longer than delete",
        GOOD.replace("keep_at_least: 30d", "keep_at_least: 2y"),
        None,
        "retention[0].delete_after",
        "must keep at least",
    ),
    (
        "role cycle",
        GOOD.replace("analyst: {}", "analyst: {inherits: [senior]}"),
        None,
        "roles.analyst.inherits",
        "circle",
    ),
    ("malformed yaml", GOOD.replace("approvals: 0", "approvals: [0"), None, None, "not valid YAML"),
    (
        "wrong type",
        GOOD.replace("rows: 1000", "rows: many"),
        None,
        "limits[0].rows",
        "expected int",
    ),
    (
        "duplicate key",
        GOOD.replace("approvals: 0", "approvals: 0\napprovals: 1"),
        3,
        "approvals",
        "twice",
    ),
    (
        "bad hours",
        GOOD.replace('"00:00-24:00"', '"9 to 5"'),
        None,
        "access[0].when.hours",
        "not a window",
    ),
    (
        "a rule naming no one",
        GOOD.replace(
            "    groups: [fraud]\n    classifications: [pii]", "    classifications: [pii]"
        ),
        None,
        "access[1]",
        "names no one",
    ),
]


@pytest.mark.parametrize(("kind", "text", "line", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_policies_give_located_errors_and_change_nothing(
    tmp_path: Path, kind: str, text: str, line: int | None, path: str | None, message: str
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(text)
    home = init_home(tmp_path / ".datatrail")
    store = open_store(home.url, signer=home.signer())
    try:
        apply_policy(store, parse_policy(GOOD), principal="alice", reason="baseline")
        before = (store.size(), active_policy(store))
        with pytest.raises(PolicyError) as caught:
            apply_policy(store, load_policy(file), principal="alice", reason="bad")
        error = caught.value
        assert message in str(error)
        assert error.file == str(file)
        assert error.line is not None and error.column is not None
        assert str(error).startswith(f"{file}:{error.line}:{error.column}: ")
        if line is not None:
            assert error.line == line
        if path is not None:
            assert error.path == path
            # The reported line really is where that place is written.
            written = text.splitlines()[error.line - 1]
            leaf = path.rsplit(".", 1)[-1].split("[")[0]
            assert leaf in written or "-" in written or ":" in written
        after = (store.size(), active_policy(store))
        assert after == before
    finally:
        store.close()


def test_the_located_line_points_at_the_bad_value() -> None:
    text = GOOD.replace("delete_after: 90d", "delete_after: 90x")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, file="p.yaml")
    line = text.splitlines()[caught.value.line - 1]  # type: ignore[operator]
    assert "90x" in line
    assert line.index("90x") + 1 == caught.value.column
