"""The retention plan: for every artifact of every dataset, what retention says and why.

Precedence, in order, and each one named in the item's reason:

1. a legal hold beats everything (nothing held is deleted, archived or erased);
2. keeping beats deleting (a due deletion waits for every keep to pass);
3. the longest keep wins; 4. the shortest delete wins;
5. compliance mode is locked: a keep in compliance mode cannot be overridden,
   not even by ``erase-data`` (governance-mode keeps can, with a recorded reason).

The plan is set-based: one query lists every (dataset, artifact) pair, one query
per record topic reads holds, purges, reviews, accesses and clock events, and
rules are matched once per dataset. Whether a clock has run out is a comparison
of timestamp strings (the event format sorts as time does) against a threshold
computed once per rule, so no per-artifact date arithmetic is done for artifacts
that are not listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import msgspec

from datatrail.governance import Policy, RetentionRule
from datatrail.model import now_ts, parse_ts
from datatrail.retention._common import shift
from datatrail.retention._facts import Facts, Hold, load_facts
from datatrail.retention._policy import PolicyContext, load_context
from datatrail.store import Store

__all__ = ["STATUSES", "Disposition", "HoldRef", "RetentionPlan", "plan"]

Status = Literal["due", "review", "held", "kept", "retained", "waiting", "unmatched", "purged"]
STATUSES: tuple[str, ...] = (
    "due",
    "review",
    "held",
    "kept",
    "retained",
    "waiting",
    "unmatched",
    "purged",
)
"""Every status an item can have, from the most to the least urgent."""

_LISTED = frozenset({"due", "review", "held"})
_FOREVER = "9999-12-31T23:59:59.999999Z"


class HoldRef(msgspec.Struct, frozen=True, kw_only=True):
    """A hold that covers an item, and the node it was placed on."""

    node: str
    case: str
    reason: str
    by: str
    since: str


class Disposition(msgspec.Struct, frozen=True, kw_only=True):
    """What retention says about one artifact of one dataset, with the rules and the reason."""

    artifact: str
    """The artifact id, ``blake3:…`` (its content hash)."""
    dataset: str
    """The dataset node id, ``dataset:NS:NAME``."""
    status: Status
    action: str | None
    """What ``apply`` does now: ``delete``, ``archive`` or ``anonymize`` (``review`` waits)."""
    reason: str
    created: str
    first_index: int
    """The log index where the artifact was first recorded."""
    current: bool
    """Whether this is the dataset's latest version (the one its storage holds now)."""
    labels: list[str] = []
    delete_due: str | None = None
    delete_rule: str | None = None
    delete_mode: str | None = None
    keep_until: str | None = None
    keep_rule: str | None = None
    keep_mode: str | None = None
    locked: bool = False
    """A compliance-mode keep is in force: nothing may shorten it."""
    holds: list[HoldRef] = []
    policy_version: int | None = None

    @property
    def node(self) -> str:
        return "artifact:" + self.artifact

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``--json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class RetentionPlan:
    """A plan: counts of every status, and the items listed (actionable and held, or all).

    Every decision (status, action, winning rule) is made when the plan is built;
    the listed items' dates and reasons are rendered on first use of :attr:`items`.
    """

    def __init__(
        self,
        *,
        now: str,
        policy_version: int | None,
        counts: dict[str, int],
        pending: list[tuple[Any, ...]],
        planner: _Planner,
    ) -> None:
        self.now = now
        self.policy_version = policy_version
        self.counts = counts
        self.total = sum(counts.values())
        self._pending = pending
        self._planner: _Planner | None = planner
        self._items: list[Disposition] | None = None

    @property
    def items(self) -> list[Disposition]:
        """The listed items, by status from the most urgent, each in log order."""
        if self._items is None:
            planner = self._planner
            assert planner is not None
            made = [planner.render(*row) for row in self._pending]
            buckets: dict[str, list[Disposition]] = {}
            for item in made:
                buckets.setdefault(item.status, []).append(item)
            self._items = [item for status in STATUSES for item in buckets.get(status, ())]
            self._pending = []
            self._planner = None
        return self._items

    def actionable(self) -> list[Disposition]:
        """Items ``apply`` acts on now (status ``due``)."""
        return [d for d in self.items if d.status == "due"]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``--json`` shape)."""
        return {
            "now": self.now,
            "policy_version": self.policy_version,
            "total": self.total,
            "counts": self.counts,
            "items": [item.to_dict() for item in self.items],
        }


@dataclass(frozen=True)
class _Compiled:
    rule: RetentionRule
    delete_before: str | None
    """A clock start at or before this makes the delete due."""
    keep_before: str | None
    """A clock start at or before this means the keep has passed."""


def _clock_start(clock: str, art_node: str, ds_node: str, created: str, facts: Facts) -> str | None:
    if clock == "created":
        return created
    if clock == "last_access":
        seen = facts.last_access
        latest = max(seen.get(art_node, ""), seen.get(ds_node, ""))
        return latest or created  # never read: the clock runs from creation
    events = facts.events.get(clock.removeprefix("event:"))
    if not events:
        return None
    latest = max(events.get(art_node, ""), events.get(ds_node, ""))
    return latest or None


def _deadline(due: tuple[_Compiled, str]) -> str:
    return shift(due[1], due[0].rule.delete_after or timedelta(0))


def _clock_text(clock: str) -> str:
    if clock == "created":
        return "from creation"
    if clock == "last_access":
        return "from the last access"
    return f"from event {clock.removeprefix('event:')}"


def _period(delta: timedelta) -> str:
    days, secs = delta.days, delta.seconds
    if secs == 0 and days % 365 == 0 and days:
        return f"{days // 365}y"
    if secs == 0:
        return f"{days}d"
    return f"{int(delta.total_seconds())}s"


def _holds_for(
    art: str, art_node: str, ds_node: str, facts: Facts, held_by_run: dict[str, list[Hold]]
) -> list[Hold]:
    found = [*facts.holds_by_node.get(art_node, ()), *facts.holds_by_node.get(ds_node, ())]
    found.extend(held_by_run.get(art, ()))
    return found


class _Planner:
    def __init__(self, store: Store, context: PolicyContext, facts: Facts, now: str) -> None:
        self.store = store
        self.context = context
        self.facts = facts
        self.now = now
        self.compiled = [
            _Compiled(
                rule=r,
                delete_before=shift(now, -r.delete_after) if r.delete_after is not None else None,
                keep_before=shift(now, -r.keep_at_least) if r.keep_at_least is not None else None,
            )
            for r in context.rules
        ]
        self.latest: dict[str, str] = {}
        self.any_holds = bool(facts.holds_by_node)
        self.held_by_run: dict[str, list[Hold]] = {}
        for run_node, artifacts in facts.run_outputs.items():
            for art in artifacts:
                self.held_by_run.setdefault(art, []).extend(facts.holds_by_node[run_node])

    def rules_for(self, namespace: str, name: str) -> tuple[list[_Compiled], list[str]]:
        if not self.compiled:
            return [], []
        labels = self.context.labels(namespace, name)
        matched = [c for c in self.compiled if c.rule.match.matches(namespace, name, (), labels)]
        return matched, sorted(labels)

    def decide(
        self,
        art: str,
        ds_node: str,
        created: str,
        rules: list[_Compiled],
    ) -> tuple[str, str | None, tuple[_Compiled, str] | None, list[Hold]]:
        """The decision for one item: status, action, the winning delete rule, the holds."""
        facts = self.facts
        if facts.purged and (art, ds_node) in facts.purged:
            return "purged", None, None, []
        art_node = "artifact:" + art
        if self.any_holds:
            holds = _holds_for(art, art_node, ds_node, facts, self.held_by_run)
            if holds:
                return "held", None, None, holds
        if not rules:
            return "unmatched", None, None, []
        due: list[tuple[_Compiled, str]] = []
        deletes = 0
        blocked = False
        started = False
        for c in rules:
            clock = c.rule.clock
            start = (
                created
                if clock == "created"
                else _clock_start(clock, art_node, ds_node, created, facts)
            )
            if c.delete_before is not None:
                deletes += 1
                if start is not None:
                    started = True
                    if start <= c.delete_before:
                        due.append((c, start))
            if c.keep_before is not None and (start is None or start > c.keep_before):
                blocked = True
        if not deletes:
            return "kept", None, None, []
        if not due:
            return ("retained" if started else "waiting"), None, None, []
        winner = due[0] if len(due) == 1 else min(due, key=_deadline)
        review = facts.reviews.get((art, ds_node)) if facts.reviews else None
        if review is not None and review.decision == "extend" and (review.until or "") > self.now:
            blocked = True
        if blocked:
            return "kept", None, winner, []
        action = winner[0].rule.action
        if action == "review":
            if review is not None and review.decision == "approve":
                return "due", "delete", winner, []
            return "review", None, winner, []
        return "due", action, winner, []

    def render(
        self,
        art: str,
        ds_node: str,
        created: str,
        first_idx: int,
        rules: list[_Compiled],
        labels: list[str],
        status: str,
        action: str | None,
        winner: tuple[_Compiled, str] | None,
        holds: list[Hold],
    ) -> Disposition:
        """The listed item with its dates, rules and reason."""
        current = self.latest.get(ds_node) == art
        if status == "purged":
            return self._item(
                art,
                ds_node,
                created,
                first_idx,
                current,
                labels,
                status,
                None,
                "purged: its receipt is in the log",
            )
        if status == "unmatched":
            return self._item(
                art,
                ds_node,
                created,
                first_idx,
                current,
                labels,
                status,
                None,
                "no retention rule matches this dataset; it is kept",
            )
        if status == "held":
            cases = ", ".join(sorted({h.case for h in holds}))
            return self._full(
                art,
                ds_node,
                created,
                first_idx,
                current,
                labels,
                rules,
                holds,
                status,
                None,
                f"held for case {cases}: a legal hold beats every retention rule",
            )
        review = self.facts.reviews.get((art, ds_node))
        extended = (
            review is not None
            and review.decision == "extend"
            and review.until is not None
            and review.until > self.now
        )
        return self._full(
            art,
            ds_node,
            created,
            first_idx,
            current,
            labels,
            rules,
            [],
            status,
            action,
            None,
            winner=winner,
            review=review,
            extended=extended,
        )

    def _item(
        self,
        art: str,
        ds_node: str,
        created: str,
        first_idx: int,
        current: bool,
        labels: list[str],
        status: str,
        action: str | None,
        reason: str,
    ) -> Disposition:
        return Disposition(
            artifact=art,
            dataset=ds_node,
            status=status,  # type: ignore[arg-type]
            action=action,
            reason=reason,
            created=created,
            first_index=first_idx,
            current=current,
            labels=labels,
            policy_version=self.context.version,
        )

    def _full(
        self,
        art: str,
        ds_node: str,
        created: str,
        first_idx: int,
        current: bool,
        labels: list[str],
        rules: list[_Compiled],
        holds: list[Hold],
        status: str,
        action: str | None,
        reason: str | None,
        *,
        winner: tuple[_Compiled, str] | None = None,
        review: Any = None,
        extended: bool = False,
    ) -> Disposition:
        art_node = "artifact:" + art
        facts = self.facts
        # Dates for the listed item: the shortest delete and the longest keep, with their rules.
        delete_due = delete_rule = delete_mode = None
        keep_until = keep_rule = keep_mode = None
        pending_keep: _Compiled | None = None
        for c in rules:
            rule = c.rule
            start = _clock_start(rule.clock, art_node, ds_node, created, facts)
            if rule.delete_after is not None and start is not None:
                at = shift(start, rule.delete_after)
                if delete_due is None or at < delete_due:
                    delete_due, delete_rule, delete_mode = at, rule.id, rule.mode
            if rule.keep_at_least is not None:
                if start is None:
                    pending_keep = c
                    continue
                at = shift(start, rule.keep_at_least)
                if keep_until is None or at > keep_until:
                    keep_until, keep_rule, keep_mode = at, rule.id, rule.mode
        if pending_keep is not None:
            keep_until, keep_rule, keep_mode = (
                _FOREVER,
                pending_keep.rule.id,
                pending_keep.rule.mode,
            )
        if extended and review is not None and (keep_until is None or review.until > keep_until):
            keep_until, keep_rule, keep_mode = review.until, f"review:{review.index}", "governance"
        locked = keep_mode == "compliance" and keep_until is not None and keep_until > self.now
        if reason is None:
            reason = self._reason(
                status,
                action,
                winner,
                delete_due,
                keep_until,
                keep_rule,
                keep_mode,
                pending_keep,
                review,
                extended,
                rules,
            )
        version = self.context.version
        return Disposition(
            artifact=art,
            dataset=ds_node,
            status=status,  # type: ignore[arg-type]
            action=action,
            reason=reason,
            created=created,
            first_index=first_idx,
            current=current,
            labels=labels,
            delete_due=delete_due,
            delete_rule=delete_rule,
            delete_mode=delete_mode,
            keep_until=keep_until,
            keep_rule=keep_rule,
            keep_mode=keep_mode,
            locked=locked,
            holds=[
                HoldRef(node=h.node, case=h.case, reason=h.reason, by=h.by, since=h.since)
                for h in holds
            ],
            policy_version=version,
        )

    def _reason(
        self,
        status: str,
        action: str | None,
        winner: tuple[_Compiled, str] | None,
        delete_due: str | None,
        keep_until: str | None,
        keep_rule: str | None,
        keep_mode: str | None,
        pending_keep: _Compiled | None,
        review: Any,
        extended: bool,
        rules: list[_Compiled],
    ) -> str:
        version = f"policy v{self.context.version}" if self.context.version else "the policy"
        deletes = [c for c in rules if c.rule.delete_after is not None]
        if status == "kept" and not deletes:
            return f"kept: the matching rules of {version} only say how long to keep, never delete"
        if winner is not None:
            rule = winner[0].rule
            assert rule.delete_after is not None
            what = (
                f"rule {rule.id} ({rule.action} {_period(rule.delete_after)} "
                f"{_clock_text(rule.clock)}, {rule.mode} mode, {version}) made it due on {delete_due}"
            )
            if len(deletes) > 1:
                what += " (the shortest delete wins)"
        else:
            what = ""
        if status == "due":
            extra = ""
            if review is not None and review.decision == "approve":
                extra = f"; deletion approved in review by {review.by}: {review.reason}"
            return f"{action} now: {what}{extra}"
        if status == "review":
            queued = " (queued for review)" if review is not None else ""
            return f"awaiting a reviewer's decision{queued}: {what}"
        if status == "kept":
            lock = " (compliance mode: locked)" if keep_mode == "compliance" else ""
            if extended and keep_rule and keep_rule.startswith("review:"):
                return (
                    f"kept until {keep_until}: extended in review by {review.by}: {review.reason}"
                )
            if pending_keep is not None:
                clock = _clock_text(pending_keep.rule.clock)
                return (
                    f"kept: {what}, but rule {pending_keep.rule.id} keeps it for "
                    f"{_period(pending_keep.rule.keep_at_least or timedelta(0))} {clock}, "
                    f"which has not happened yet{lock} (keeping beats deleting)"
                )
            return (
                f"kept until {keep_until}: {what}, but rule {keep_rule} keeps it longer{lock} "
                "(keeping beats deleting; the longest keep wins)"
            )
        if status == "waiting":
            clocks = ", ".join(sorted({c.rule.clock for c in deletes}))
            return f"waiting: the clock ({clocks}) of every delete rule has not started"
        return f"retained until {delete_due} by {version}"


def _rows(store: Store) -> Iterable[tuple[Any, ...]]:
    # Log order: the first row of a (dataset, artifact) pair is its creation, the last row
    # of a dataset its current version. No join: every column is in run_io.
    return store.query(
        "SELECT dataset_namespace, dataset_name, artifact_id, ts, idx FROM run_io "
        "WHERE dataset_name IS NOT NULL ORDER BY idx"
    )


def plan(
    store: Store,
    *,
    policy: Policy | None = None,
    version: int | None = None,
    now: str | None = None,
    everything: bool = False,
    artifact: str | None = None,
    context: PolicyContext | None = None,
    facts: Facts | None = None,
) -> RetentionPlan:
    """What retention would do now under the active policy (or ``policy``), and why.

    Lists the items that are due, awaiting review or held (``everything`` lists
    every artifact of every dataset); ``counts`` has every status either way.
    ``artifact`` (``blake3:…``) narrows the plan to one artifact.
    ``now`` (any time ``parse_ts`` reads) plans as of another moment.
    """
    moment = parse_ts(now) if now else now_ts()
    ctx = context or load_context(store, policy, version)
    known = facts or load_facts(store)
    planner = _Planner(store, ctx, known, moment)
    wanted = artifact.removeprefix("artifact:") if artifact else None
    # One pass in log order: the first row of a (dataset, artifact) pair is its creation,
    # decided at once; the last row of a dataset names its current version.
    by_ns: dict[str, dict[str, list[Any]]] = {}
    latest: dict[str, str] = {}
    counts: Counter[str] = Counter()
    pending: list[tuple[Any, ...]] = []
    listed = _LISTED if not (everything or wanted is not None) else frozenset(STATUSES)
    decide = planner.decide
    for ns, name, art, created, first_idx in _rows(store):
        names = by_ns.get(ns)
        if names is None:
            names = by_ns[ns] = {}
        info = names.get(name)
        if info is None:
            rules, labels = planner.rules_for(ns, name)
            info = names[name] = [f"dataset:{ns}:{name}", rules, labels, set()]
        ds_node = info[0]
        latest[ds_node] = art
        if wanted is not None and art != wanted:
            continue
        seen = info[3]
        if art in seen:
            continue
        seen.add(art)
        status, action, winner, holds = decide(art, ds_node, created, info[1])
        counts[status] += 1
        if status in listed:
            pending.append(
                (art, ds_node, created, first_idx, info[1], info[2], status, action, winner, holds)
            )
    planner.latest = latest
    return RetentionPlan(
        now=moment,
        policy_version=ctx.version,
        counts={s: counts[s] for s in STATUSES if counts[s]},
        pending=pending,
        planner=planner,
    )
