"""Access decisions: deny overrides, no allow means deny, masks, caching, reload, fail closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datatrail.governance import (
    DEFAULT_DENY,
    FAIL_CLOSED,
    NO_POLICY,
    Engine,
    apply_policy,
    decide,
    parse_policy,
)
from datatrail.model import Record, now_ts, uuid7
from datatrail.store import Store, init_home, open_store

POLICY = """\
classifications:
  pii: {}
datasets:
  - match: {namespace: file, name: "*/raw/*"}
    classifications: [pii]
    columns: {email: [pii], phone: [pii]}
roles:
  analyst: {}
  senior: {inherits: [analyst]}
  policy-admin: {}
principals:
  alice: {roles: [policy-admin]}
  bob: {roles: [senior]}
  carol: {roles: [analyst], attributes: {contract: external}}
access:
  - id: analysts-read
    effect: allow
    actions: [read]
    roles: [analyst]
    when: {purpose: [fraud]}
    masks: {columns: {card: keep_last_4}, classifications: {pii: hash}}
  - id: bob-orders
    effect: allow
    actions: [read, export]
    principals: [bob]
    datasets: [{namespace: file, name: "*/orders.csv"}]
  - id: externals-no-pii
    effect: deny
    actions: [read, export]
    roles: [analyst]
    classifications: [pii]
    when: {attributes: {contract: external}}
"""
RAW = "dataset:file:/data/raw/customers.csv"
ORDERS = "dataset:file:/data/out/orders.csv"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    home = init_home(tmp_path / ".datatrail")
    s = open_store(home.url, signer=home.signer())
    yield s
    s.close()


def test_a_matching_allow_allows_with_the_masks_of_its_labels() -> None:
    d = decide(parse_policy(POLICY), "bob", "read", RAW, purpose="fraud")
    assert d.outcome == "allow"
    assert d.rules == ("analysts-read",)
    assert d.masks == {"card": "keep_last_4", "email": "hash", "phone": "hash"}
    assert "allowed by analysts-read" in d.reason


def test_masks_only_name_columns_the_data_has() -> None:
    d = decide(parse_policy(POLICY), "bob", "read", RAW, purpose="fraud", columns=["email", "x"])
    assert d.masks == {"email": "hash"}


def test_no_matching_allow_means_deny_naming_the_default() -> None:
    d = decide(parse_policy(POLICY), "bob", "read", RAW)  # no purpose
    assert d.outcome == "deny"
    assert d.rules == (DEFAULT_DENY,)
    assert "no rule allows it" in d.reason


def test_deny_overrides_allow() -> None:
    d = decide(parse_policy(POLICY), "carol", "read", RAW, purpose="fraud")
    assert d.outcome == "deny"
    assert d.rules == ("externals-no-pii",)


def test_dataset_globs_and_inherited_roles() -> None:
    policy = parse_policy(POLICY)
    assert decide(policy, "bob", "export", ORDERS).rules == ("bob-orders",)
    assert decide(policy, "bob", "export", RAW).outcome == "deny"
    assert decide(policy, "dave", "read", ORDERS, purpose="fraud").outcome == "deny"


def test_labels_given_by_lineage_replace_the_policys_own() -> None:
    policy = parse_policy(POLICY)
    derived = "dataset:file:/data/out/report.csv"
    assert decide(policy, "carol", "read", derived, purpose="fraud").outcome == "allow"
    assert (
        decide(policy, "carol", "read", derived, purpose="fraud", labels=["pii"]).outcome == "deny"
    )


def test_the_engine_caches_by_version_and_the_cached_answer_is_the_same() -> None:
    engine = Engine(parse_policy(POLICY))
    first = engine.decide("bob", "read", RAW, purpose="fraud")
    second = engine.decide("bob", "read", RAW, purpose="fraud")
    assert first is second
    assert engine.decide("bob", "read", RAW, purpose="other") is not first


def test_an_engine_over_a_store_fails_closed_without_a_policy(store: Store) -> None:
    d = Engine(store).decide("bob", "read", RAW, purpose="fraud")
    assert d.outcome == "deny" and d.rules == (NO_POLICY,)


def test_an_engine_picks_up_a_new_version_without_restart(store: Store) -> None:
    engine = Engine(store)
    apply_policy(store, parse_policy(POLICY), principal="alice", reason="v1")
    assert engine.decide("bob", "read", RAW, purpose="fraud").policy_version == 1
    stricter = POLICY.replace("when: {purpose: [fraud]}", "when: {purpose: [audit]}")
    apply_policy(store, parse_policy(stricter), principal="alice", reason="v2")
    d = engine.decide("bob", "read", RAW, purpose="fraud")
    assert (d.outcome, d.policy_version) == ("deny", 2)


def test_a_policy_that_cannot_be_loaded_denies_everything(store: Store) -> None:
    engine = Engine(store)
    broken = Record(
        id=uuid7(),
        ts=now_ts(),
        topic="policy.activated",
        subject="policy:1",
        data={"version": 1, "content": "access: [oops", "author": "x", "reason": "r"},
    )
    store.append([broken])
    d = engine.decide("bob", "read", RAW, purpose="fraud")
    assert d.outcome == "deny"
    assert d.rules == (FAIL_CLOSED,)
    assert "could not be loaded" in d.reason


# -- properties -----------------------------------------------------------------------------

_names = st.sampled_from(["p1", "p2", "p3"])
_roles = st.sampled_from(["r1", "r2"])
_actions = st.sampled_from(["read", "write", "export"])
_purposes = st.sampled_from([None, "a", "b"])
_rule = st.fixed_dictionaries(
    {
        "effect": st.sampled_from(["allow", "deny"]),
        "actions": st.lists(_actions, min_size=1, max_size=3, unique=True),
        "who": st.one_of(
            st.builds(lambda p: ("principals", [p]), st.one_of(_names, st.just("*"))),
            st.builds(lambda r: ("roles", [r]), _roles),
        ),
        "dataset": st.sampled_from(["*", "*/a/*", "*/b/*"]),
        "purpose": _purposes,
    }
)


def _document(rules: list[dict[str, object]]) -> str:
    lines = [
        "roles: {r1: {}, r2: {inherits: [r1]}}",
        "principals: {p1: {roles: [r1]}, p2: {roles: [r2]}, p3: {}}",
        "access:",
    ]
    for i, rule in enumerate(rules):
        key, value = rule["who"]  # type: ignore[misc]
        lines.append(f"  - id: rule-{i}")
        lines.append(f"    effect: {rule['effect']}")
        lines.append(f"    actions: [{', '.join(rule['actions'])}]")  # type: ignore[arg-type]
        lines.append(f"    {key}: [{', '.join(repr(v) for v in value)}]")
        lines.append(f"    datasets: [{{name: '{rule['dataset']}'}}]")
        if rule["purpose"]:
            lines.append(f"    when: {{purpose: [{rule['purpose']}]}}")
    return "\n".join(lines) + "\n"


_request = st.tuples(
    st.sampled_from(["p1", "p2", "p3", "nobody"]),
    _actions,
    st.sampled_from(["dataset:file:/x/a/1.csv", "dataset:file:/x/b/2.csv", "dataset:file:/c.csv"]),
    _purposes,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_rule, min_size=0, max_size=8), st.lists(_request, min_size=1, max_size=6))
def test_property_deny_overrides_and_every_decision_names_rules_and_version(
    rules: list[dict[str, object]], requests: list[tuple[str, str, str, str | None]]
) -> None:
    policy = parse_policy(_document(rules))
    by_id = {r.id: r for r in policy.access}
    for principal, action, node, purpose in requests:
        d = decide(policy, principal, action, node, purpose=purpose)
        assert d.rules, "every decision names the rules behind it"
        assert d.policy_version == 0 and d.policy_hash == policy.hash
        named = [by_id[r] for r in d.rules if r in by_id]
        # Reference evaluation, rule by rule, without the index.
        matching = [
            r
            for r in policy.access
            if action in r.actions
            and (
                "*" in r.principals
                or principal in r.principals
                or bool(set(r.roles) & policy.roles_of(principal))
            )
            and any(m.matches("file", node.split(":", 2)[2]) for m in r.datasets)
            and (not r.when.purposes or purpose in r.when.purposes)
        ]
        denies = [r for r in matching if r.effect == "deny"]
        if denies:
            assert d.outcome == "deny"
            assert [r.id for r in named] == [r.id for r in denies]
        elif matching:
            assert d.outcome == "allow"
            assert all(r.effect == "allow" for r in named)
        else:
            assert d.outcome == "deny" and d.rules == (DEFAULT_DENY,)
