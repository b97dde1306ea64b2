"""Policy versions: apply, approvals, reject, rollback, compliance locks, shadow, simulate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datatrail.errors import PolicyDenied, PolicyError, UsageError
from datatrail.governance import (
    active_policy,
    apply_policy,
    approve_policy,
    diff_versions,
    parse_policy,
    policy_history,
    reject_policy,
    rollback_policy,
)
from datatrail.store import Store, init_home, open_store

BASE = """\
approvals: {approvals}
roles:
  policy-admin: {{}}
principals:
  alice: {{roles: [policy-admin]}}
  bob: {{roles: [policy-admin]}}
  carol: {{}}
retention:
  - id: ledger
    match: {{name: "*/ledger/*"}}
    keep_at_least: {keep}
    mode: {mode}
"""


def doc(approvals: int = 0, keep: str = "30d", mode: str = "compliance") -> str:
    return BASE.format(approvals=approvals, keep=keep, mode=mode)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    home = init_home(tmp_path / ".datatrail")
    s = open_store(home.url, signer=home.signer())
    yield s
    s.close()


def test_apply_records_a_version_with_content_author_reason_and_explanation(store: Store) -> None:
    result = apply_policy(store, parse_policy(doc()), principal="alice", reason="first")
    assert (result.version, result.status) == (1, "active")
    active = active_policy(store)
    assert active is not None
    assert (active.version, active.author, active.reason) == (1, "alice", "first")
    assert active.policy.hash == parse_policy(doc()).hash
    assert "locked (compliance mode)" in active.explain
    rows = store.query("SELECT topic, subject FROM records")
    assert rows == [("policy.activated", "policy:1")]


def test_applying_the_same_document_twice_equals_once(store: Store) -> None:
    apply_policy(store, parse_policy(doc()), principal="alice", reason="first")
    size = store.size()
    again = apply_policy(store, parse_policy("# same\n" + doc()), principal="alice", reason="again")
    assert again.unchanged and again.version == 1
    assert store.size() == size


def test_only_a_policy_admin_may_change_the_policy(store: Store) -> None:
    apply_policy(store, parse_policy(doc()), principal="alice", reason="first")
    with pytest.raises(PolicyDenied, match="policy-admin"):
        apply_policy(store, parse_policy(doc(keep="60d")), principal="carol", reason="mine")
    assert active_policy(store).version == 1  # type: ignore[union-attr]


def test_a_compliance_retention_cannot_be_shortened_or_removed(store: Store) -> None:
    apply_policy(store, parse_policy(doc(keep="30d")), principal="alice", reason="first")
    for text, why in [
        (doc(keep="29d"), "shortened"),
        (doc(mode="governance"), "governance mode"),
        (doc().split("retention:")[0], "removed"),
    ]:
        with pytest.raises(PolicyError, match=why):
            apply_policy(store, parse_policy(text), principal="alice", reason="try")
    assert active_policy(store).version == 1  # type: ignore[union-attr]
    assert (
        apply_policy(
            store, parse_policy(doc(keep="60d")), principal="alice", reason="longer"
        ).status
        == "active"
    )


def test_governance_retention_may_be_shortened_with_a_reason(store: Store) -> None:
    apply_policy(store, parse_policy(doc(mode="governance")), principal="alice", reason="first")
    result = apply_policy(
        store, parse_policy(doc(keep="1d", mode="governance")), principal="alice", reason="less"
    )
    assert result.status == "active"


def test_with_approvals_a_change_is_proposed_until_another_admin_approves(store: Store) -> None:
    # Adopting approvals: 2 already needs the second admin (the larger requirement governs).
    first = apply_policy(store, parse_policy(doc(approvals=2)), principal="alice", reason="first")
    assert first.status == "proposed" and active_policy(store) is None
    approve_policy(store, 1, principal="bob")
    proposed = apply_policy(
        store, parse_policy(doc(approvals=2, keep="60d")), principal="alice", reason="longer"
    )
    assert (proposed.version, proposed.status) == (2, "proposed")
    assert active_policy(store).version == 1  # type: ignore[union-attr]
    with pytest.raises(PolicyDenied, match="cannot also approve"):
        approve_policy(store, 2, principal="alice")
    with pytest.raises(PolicyDenied, match="policy-admin"):
        approve_policy(store, 2, principal="carol")
    approved = approve_policy(store, 2, principal="bob", reason="ok")
    assert approved.status == "active"
    assert active_policy(store).version == 2  # type: ignore[union-attr]
    topics = [r[0] for r in store.query("SELECT topic FROM records ORDER BY idx")]
    assert topics == ["policy.proposed", "policy.approved", "policy.activated"] * 2


def test_a_rejected_proposal_can_never_be_approved(store: Store) -> None:
    apply_policy(store, parse_policy(doc(approvals=0)), principal="alice", reason="first")
    apply_policy(store, parse_policy(doc(approvals=2, keep="60d")), principal="alice", reason="x")
    reject_policy(store, 2, principal="bob", reason="no")
    with pytest.raises(UsageError, match="rejected"):
        approve_policy(store, 2, principal="bob")
    assert [h.status for h in policy_history(store)] == ["active", "rejected"]


def test_rollback_makes_an_earlier_document_active_as_a_new_version(store: Store) -> None:
    apply_policy(store, parse_policy(doc(mode="governance")), principal="alice", reason="v1")
    apply_policy(
        store, parse_policy(doc(keep="60d", mode="governance")), principal="alice", reason="v2"
    )
    result = rollback_policy(store, 1, principal="bob", reason="v2 broke reports")
    assert result.version == 3
    active = active_policy(store)
    assert active is not None and active.rolled_back_to == 1
    assert active.policy.hash == parse_policy(doc(mode="governance")).hash
    assert "keep_at_least: 60d" in diff_versions(store, 1, 2)
    assert [h.status for h in policy_history(store)] == ["superseded", "superseded", "active"]


def test_rollback_cannot_undo_a_compliance_lock(store: Store) -> None:
    apply_policy(store, parse_policy(doc(keep="30d")), principal="alice", reason="v1")
    apply_policy(store, parse_policy(doc(keep="90d")), principal="alice", reason="v2")
    with pytest.raises(PolicyError, match="shortened"):
        rollback_policy(store, 1, principal="alice", reason="oops")


_step = st.tuples(
    st.sampled_from(["apply", "rollback"]),
    st.integers(min_value=1, max_value=120),
    st.sampled_from(["compliance", "governance"]),
    st.booleans(),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_step, min_size=1, max_size=8))
def test_property_no_sequence_of_versions_shortens_a_compliance_retention(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, str, bool]]
) -> None:
    home = init_home(tmp_path_factory.mktemp("seq") / ".datatrail")
    store = open_store(home.url, signer=home.signer())
    try:
        locked: timedelta | None = None
        for kind, days, mode, drop in steps:
            try:
                if kind == "apply":
                    text = doc(keep=f"{days}d", mode=mode)
                    if drop:
                        text = text.split("retention:")[0]
                    apply_policy(store, parse_policy(text), principal="alice", reason="step")
                else:
                    history = policy_history(store)
                    if history:
                        rollback_policy(
                            store,
                            history[days % len(history)].version,
                            principal="alice",
                            reason="back",
                        )
            except (PolicyError, UsageError):
                pass
            active = active_policy(store)
            if active is None:
                continue
            rules = {r.id: r for r in active.policy.retention}
            if locked is not None:
                rule = rules.get("ledger")
                assert rule is not None and rule.mode == "compliance"
                assert rule.keep_at_least is not None and rule.keep_at_least >= locked
            rule = rules.get("ledger")
            if rule is not None and rule.mode == "compliance":
                locked = rule.keep_at_least
    finally:
        store.close()
