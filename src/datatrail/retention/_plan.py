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
that are not listed. Where at most one delete rule applies, an artifact that no
record names on its own is decided by bisecting its creation time into the
intervals between its dataset's thresholds, each decided once per dataset.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import msgspec

from datatrail.governance import Policy, RetentionRule
from datatrail.model import now_ts, parse_ts
from datatrail.retention._common import shift
from datatrail.retention._facts import Facts, Hold, ReviewDecision, load_facts
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


class Disposition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What retention says about one artifact of one dataset, with the rules and the reason."""

    # Not tracked by the collector: a plan lists hundreds of thousands of these, and
    # their lists (labels, holds) hold strings and holds, never anything pointing back.
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
            render = planner.render
            self._items = [render(*row) for row in self._pending]  # already in status order
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


class _Clock(enum.Enum):
    """A clock that starts when the artifact was created (a value per artifact, not per dataset)."""

    CREATED = "created"


_Start = str | None | Literal[_Clock.CREATED]
"""When a rule's clock started for an artifact: a time, never (``None``), or at creation."""
_Decision = tuple[str, str | None, int]
"""Status, action, and the position of the winning delete rule in the dataset's rules (or -1)."""


@dataclass(frozen=True)
class _Compiled:
    rule: RetentionRule
    delete_before: str | None
    """A clock start at or before this makes the delete due."""
    keep_before: str | None
    """A clock start at or before this means the keep has passed."""
    made_due: str
    """The reason's words for this rule winning, up to the date it made the item due."""


class _Dataset:
    """One dataset as the plan sees it: its rules, labels, holds and clocks."""

    __slots__ = ("clocks", "deletes", "holds", "labels", "latest", "node", "rules", "steps")

    def __init__(
        self,
        node: str,
        rules: list[_Compiled],
        labels: list[str],
        clocks: tuple[_Start, ...],
        holds: list[Hold],
    ) -> None:
        self.node = node
        self.rules = rules
        self.labels = labels
        self.clocks = clocks
        """Each rule's clock start for an artifact with no facts of its own."""
        self.holds = holds
        """The holds on the dataset node."""
        self.deletes = sum(1 for c in rules if c.rule.delete_after is not None)
        self.latest = ""
        """The artifact of the dataset's last row so far: its current version."""
        self.steps: tuple[list[str], list[_Decision]] | None = None
        """Decisions by creation time for artifacts with no facts of their own, if they are steps."""


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


def _deadline(due: tuple[_Compiled, str, int]) -> str:
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


def _artifact_ids(nodes: Iterable[str]) -> Iterable[str]:
    return (node[len("artifact:") :] for node in nodes if node.startswith("artifact:"))


class _Planner:
    """Decides every artifact as its row is read, and renders the listed ones on demand.

    Most artifacts have no facts of their own (no hold, purge, review, access or
    event names them), so their clocks start at creation or at a time shared by
    their whole dataset, worked out once per dataset. Artifacts that do have facts
    of their own (``special``) have their clocks worked out one by one; both go
    through the same decision.
    """

    def __init__(self, store: Store, context: PolicyContext, facts: Facts, now: str) -> None:
        self.store = store
        self.context = context
        self.facts = facts
        self.now = now
        self.version_text = f"policy v{context.version}" if context.version else "the policy"
        self.compiled = [self._compile(r) for r in context.rules]
        self.held_by_run: dict[str, list[Hold]] = {}
        for run_node, artifacts in facts.run_outputs.items():
            for art in artifacts:
                self.held_by_run.setdefault(art, []).extend(facts.holds_by_node[run_node])
        special = set(self.held_by_run)
        special.update(art for art, _ in facts.purged)
        special.update(art for art, _ in facts.reviews)
        special.update(_artifact_ids(facts.holds_by_node))
        special.update(_artifact_ids(facts.last_access))
        for nodes in facts.events.values():
            special.update(_artifact_ids(nodes))
        self.special = special
        """Artifacts with facts of their own, decided one by one."""
        self.datasets: list[_Dataset] = []
        self._shifted: dict[tuple[str, timedelta], str] = {}

    def _compile(self, rule: RetentionRule) -> _Compiled:
        now = self.now
        made_due = ""
        if rule.delete_after is not None:
            made_due = (
                f"rule {rule.id} ({rule.action} {_period(rule.delete_after)} "
                f"{_clock_text(rule.clock)}, {rule.mode} mode, {self.version_text}) made it due on "
            )
        return _Compiled(
            rule=rule,
            delete_before=shift(now, -rule.delete_after) if rule.delete_after is not None else None,
            keep_before=shift(now, -rule.keep_at_least) if rule.keep_at_least is not None else None,
            made_due=made_due,
        )

    def rules_for(self, namespace: str, name: str) -> tuple[list[_Compiled], list[str]]:
        if not self.compiled:
            return [], []
        labels = self.context.labels(namespace, name)
        matched = [c for c in self.compiled if c.rule.match.matches(namespace, name, (), labels)]
        return matched, sorted(labels)

    def dataset(self, namespace: str, name: str) -> _Dataset:
        """A dataset met for the first time: its rules, labels, holds and shared clock starts."""
        node = f"dataset:{namespace}:{name}"
        rules, labels = self.rules_for(namespace, name)
        facts = self.facts
        clocks: list[_Start] = []
        for c in rules:
            clock = c.rule.clock
            if clock == "created":
                clocks.append(_Clock.CREATED)
            elif clock == "last_access":
                clocks.append(facts.last_access.get(node) or _Clock.CREATED)
            else:
                events = facts.events.get(clock.removeprefix("event:"))
                clocks.append((events.get(node) or None) if events else None)
        found = _Dataset(node, rules, labels, tuple(clocks), facts.holds_by_node.get(node, []))
        found.steps = self._steps(found)
        self.datasets.append(found)
        return found

    def _steps(self, ds: _Dataset) -> tuple[list[str], list[_Decision]] | None:
        """The decisions of a dataset's artifacts with no facts of their own, by creation time.

        With at most one delete rule, such a decision depends on the creation time only
        through comparisons with the thresholds of the rules whose clock starts at creation:
        it is one decision per interval between them, found by bisection. With several, the
        shortest delete depends on the time itself, and each artifact is decided in full.
        """
        if ds.holds:
            return [], [("held", None, -1)]
        if ds.deletes > 1:
            return None
        bounds = sorted(
            {
                at
                for c, clock in zip(ds.rules, ds.clocks, strict=True)
                if clock is _Clock.CREATED
                for at in (c.delete_before, c.keep_before)
                if at is not None
            }
        )
        # bisect_left(bounds, created) is i for every time in (bounds[i - 1], bounds[i]],
        # bounds[i] among them; past the last bound, any longer string starting with it.
        samples = [*bounds, bounds[-1] + "\0"] if bounds else [""]
        return bounds, [self.decide(ds, at, ds.clocks, None) for at in samples]

    def clocks_of(self, art: str, ds: _Dataset, created: str) -> tuple[_Start, ...]:
        """Each rule's clock start for an artifact with facts of its own."""
        art_node = "artifact:" + art
        return tuple(
            _Clock.CREATED
            if c.rule.clock == "created"
            else _clock_start(c.rule.clock, art_node, ds.node, created, self.facts)
            for c in ds.rules
        )

    def holds_of(self, art: str, ds: _Dataset) -> list[Hold]:
        """The holds that cover an artifact with facts of its own."""
        return _holds_for(art, "artifact:" + art, ds.node, self.facts, self.held_by_run)

    def decide_special(self, art: str, ds: _Dataset, created: str) -> _Decision:
        """The decision for an artifact with facts of its own: purged, held, or by its clocks."""
        facts = self.facts
        if (art, ds.node) in facts.purged:
            return "purged", None, -1
        if self.holds_of(art, ds):
            return "held", None, -1
        review = facts.reviews.get((art, ds.node))
        return self.decide(ds, created, self.clocks_of(art, ds, created), review)

    def decide(
        self,
        ds: _Dataset,
        created: str,
        clocks: tuple[_Start, ...],
        review: ReviewDecision | None,
    ) -> _Decision:
        """The decision for one unheld item: status, action, the winning delete rule's position."""
        rules = ds.rules
        if not rules:
            return "unmatched", None, -1
        if not ds.deletes:
            return "kept", None, -1
        due: list[tuple[_Compiled, str, int]] = []
        blocked = False
        started = False
        for pos, c in enumerate(rules):
            start = clocks[pos]
            if start is _Clock.CREATED:
                start = created
            if c.delete_before is not None and start is not None:
                started = True
                if start <= c.delete_before:
                    due.append((c, start, pos))
            if c.keep_before is not None and (start is None or start > c.keep_before):
                blocked = True
        if not due:
            return ("retained" if started else "waiting"), None, -1
        winner = due[0] if len(due) == 1 else min(due, key=_deadline)
        if review is not None and review.decision == "extend" and (review.until or "") > self.now:
            blocked = True
        if blocked:
            return "kept", None, winner[2]
        action = winner[0].rule.action
        if action == "review":
            if review is not None and review.decision == "approve":
                return "due", "delete", winner[2]
            return "review", None, winner[2]
        return "due", action, winner[2]

    def _shift(self, start: str, delta: timedelta) -> str:
        # A start shared by a dataset's artifacts gives them the same dates: shift it once.
        key = (start, delta)
        at = self._shifted.get(key)
        if at is None:
            at = self._shifted[key] = shift(start, delta)
        return at

    def render(
        self,
        art: str,
        ds_index: int,
        created: str,
        first_idx: int,
        status: str,
        action: str | None,
        win: int,
    ) -> Disposition:
        """The listed item with its dates, rules and reason."""
        ds = self.datasets[ds_index]
        current = ds.latest == art
        if status == "purged" or status == "unmatched":
            return Disposition(
                artifact=art,
                dataset=ds.node,
                status=status,  # type: ignore[arg-type]
                action=None,
                reason=(
                    "purged: its receipt is in the log"
                    if status == "purged"
                    else "no retention rule matches this dataset; it is kept"
                ),
                created=created,
                first_index=first_idx,
                current=current,
                labels=ds.labels,
                policy_version=self.context.version,
            )
        special = art in self.special
        clocks = self.clocks_of(art, ds, created) if special else ds.clocks
        reason: str | None = None
        review: ReviewDecision | None = None
        extended = False
        if status == "held":
            holds = self.holds_of(art, ds) if special else ds.holds
            cases = ", ".join(sorted({h.case for h in holds}))
            reason = f"held for case {cases}: a legal hold beats every retention rule"
        else:
            holds = []
            review = self.facts.reviews.get((art, ds.node)) if special else None
            extended = (
                review is not None
                and review.decision == "extend"
                and review.until is not None
                and review.until > self.now
            )
        # Dates for the listed item: the shortest delete and the longest keep, with their rules.
        delete_due = delete_rule = delete_mode = None
        keep_until = keep_rule = keep_mode = None
        pending_keep: _Compiled | None = None
        for pos, c in enumerate(ds.rules):
            rule = c.rule
            clock = clocks[pos]
            move: Callable[[str, timedelta], str]
            if clock is _Clock.CREATED:
                start: str | None = created
                move = shift
            else:
                start = clock
                move = self._shift
            if rule.delete_after is not None and start is not None:
                at = move(start, rule.delete_after)
                if delete_due is None or at < delete_due:
                    delete_due, delete_rule, delete_mode = at, rule.id, rule.mode
            if rule.keep_at_least is not None:
                if start is None:
                    pending_keep = c
                    continue
                at = move(start, rule.keep_at_least)
                if keep_until is None or at > keep_until:
                    keep_until, keep_rule, keep_mode = at, rule.id, rule.mode
        if pending_keep is not None:
            keep_until, keep_rule, keep_mode = (
                _FOREVER,
                pending_keep.rule.id,
                pending_keep.rule.mode,
            )
        if (
            extended
            and review is not None
            and review.until is not None
            and (keep_until is None or review.until > keep_until)
        ):
            keep_until, keep_rule, keep_mode = review.until, f"review:{review.index}", "governance"
        locked = keep_mode == "compliance" and keep_until is not None and keep_until > self.now
        if reason is None:
            reason = self._reason(
                ds,
                status,
                action,
                ds.rules[win] if win >= 0 else None,
                delete_due,
                keep_until,
                keep_rule,
                keep_mode,
                pending_keep,
                review,
                extended,
            )
        item = Disposition(
            artifact=art,
            dataset=ds.node,
            status=status,  # type: ignore[arg-type]
            action=action,
            reason=reason,
            created=created,
            first_index=first_idx,
            current=current,
            labels=ds.labels,
            delete_due=delete_due,
            delete_rule=delete_rule,
            delete_mode=delete_mode,
            policy_version=self.context.version,
        )
        if keep_until is None and not holds:
            return item
        # Set apart: a call with more than 15 keyword arguments makes CPython build a dict
        # for it, which costs several times the call itself, and most items have neither.
        return msgspec.structs.replace(
            item,
            keep_until=keep_until,
            keep_rule=keep_rule,
            keep_mode=keep_mode,
            locked=locked,
            holds=[
                HoldRef(node=h.node, case=h.case, reason=h.reason, by=h.by, since=h.since)
                for h in holds
            ],
        )

    def _reason(
        self,
        ds: _Dataset,
        status: str,
        action: str | None,
        winner: _Compiled | None,
        delete_due: str | None,
        keep_until: str | None,
        keep_rule: str | None,
        keep_mode: str | None,
        pending_keep: _Compiled | None,
        review: ReviewDecision | None,
        extended: bool,
    ) -> str:
        version = self.version_text
        if status == "kept" and not ds.deletes:
            return f"kept: the matching rules of {version} only say how long to keep, never delete"
        if winner is not None:
            what = f"{winner.made_due}{delete_due}"
            if ds.deletes > 1:
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
            if extended and review is not None and keep_rule and keep_rule.startswith("review:"):
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
            clocks = ", ".join(
                sorted({c.rule.clock for c in ds.rules if c.rule.delete_after is not None})
            )
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
    # Each dataset with its position in the planner and the artifacts seen so far (dropped
    # with this frame: a million ids the collector need not walk while items are rendered).
    by_ns: dict[str, dict[str, tuple[_Dataset, int, set[str]]]] = {}
    counts = dict.fromkeys(STATUSES, 0)
    listed = _LISTED if not (everything or wanted is not None) else frozenset(STATUSES)
    # Listed rows by status, in log order; atomic tuples, so the collector stops tracking them.
    pending: dict[str, list[tuple[str, int, str, int, str, str | None, int]]] = {
        status: [] for status in listed
    }
    special = planner.special
    decide = planner.decide
    for ns, name, art, created, first_idx in _rows(store):
        names = by_ns.get(ns)
        if names is None:
            names = by_ns[ns] = {}
        found = names.get(name)
        if found is None:
            found = names[name] = (planner.dataset(ns, name), len(planner.datasets) - 1, set())
        ds = found[0]
        ds.latest = art
        if wanted is not None and art != wanted:
            continue
        seen = found[2]
        if art in seen:
            continue
        seen.add(art)
        steps = ds.steps
        if art in special:
            status, action, win = planner.decide_special(art, ds, created)
        elif steps is not None:
            status, action, win = steps[1][bisect_left(steps[0], created)]
        else:
            status, action, win = decide(ds, created, ds.clocks, None)
        counts[status] += 1
        if status in listed:
            pending[status].append((art, found[1], created, first_idx, status, action, win))
    return RetentionPlan(
        now=moment,
        policy_version=ctx.version,
        counts={s: counts[s] for s in STATUSES if counts[s]},
        pending=[row for status in STATUSES for row in pending.get(status, ())],
        planner=planner,
    )
