"""Policy documents: the YAML a team writes, validated strictly into a frozen :class:`Policy`.

A policy declares classifications (and the jobs that remove them), dataset
matching (labels, owners, column labels), roles with inheritance, principals
and groups, access rules, limits, retention rules, how many approvals a change
needs and where notifications go. :func:`parse_policy` and :func:`load_policy`
refuse anything unknown or malformed with a :class:`~datatrail.errors.PolicyError`
naming file, line, column and the place in the document (``retention[1].delete_after``).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from datatrail.errors import PolicyError
from datatrail.governance._source import Path_, Source, compose, convert, merge
from datatrail.model import canonical_bytes

__all__ = [
    "ACTIONS",
    "ADMIN_ROLE",
    "DAYS",
    "MASK_KINDS",
    "AccessRule",
    "Classification",
    "Condition",
    "DatasetMatch",
    "DatasetRule",
    "Group",
    "Limit",
    "Notify",
    "Policy",
    "Principal",
    "RetentionRule",
    "Role",
    "glob_match",
    "load_policy",
    "parse_duration",
    "parse_policy",
]

ADMIN_ROLE = "policy-admin"
"""The role whose members may apply, approve, reject and roll back policy versions."""

Action = Literal["read", "write", "export", "delete", "admin"]
ACTIONS: tuple[str, ...] = ("read", "write", "export", "delete", "admin")
MaskKind = Literal["redact", "null", "hash", "keep_last_4", "token", "year"]
MASK_KINDS: tuple[str, ...] = ("redact", "null", "hash", "keep_last_4", "token", "year")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RetentionAction = Literal["delete", "archive", "anonymize", "review"]
RetentionMode = Literal["governance", "compliance"]

_DURATION = re.compile(r"(\d+)\s*([smhdwy])")
_DURATION_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdwy]\s*)+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def parse_duration(text: str) -> timedelta:
    """``30d`` -> 30 days. Units: s, m, h, d, w, y (365 days); parts combine (``1d12h``)."""
    if not isinstance(text, str) or not _DURATION_WHOLE.match(text):
        raise PolicyError(
            f"duration {text!r} is not understood; write a number and a unit "
            "(s, m, h, d, w, y), e.g. 90d, 12h, 1y or 1d12h"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
    return timedelta(seconds=seconds)


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def glob_match(pattern: str, text: str) -> bool:
    """Shell-style match (``*``, ``?``, ``[ab]``); ``*`` also crosses ``/`` and ``.``."""
    if pattern == "*":
        return True
    return _glob(pattern).match(text) is not None


# -- the values a policy is made of ---------------------------------------------------------


class DatasetMatch(msgspec.Struct, frozen=True, kw_only=True):
    """Which datasets something applies to: namespace and name globs, tags, classifications."""

    namespace: str = "*"
    name: str = "*"
    tags: tuple[str, ...] = ()
    """Every tag listed must be on the dataset."""
    classifications: tuple[str, ...] = ()
    """Any one of these labels must be on the dataset (or artifact)."""

    def matches(
        self,
        namespace: str,
        name: str,
        tags: Iterable[str] = (),
        labels: Iterable[str] = (),
    ) -> bool:
        """Whether a dataset (with its tags and classification labels) is matched."""
        if not glob_match(self.namespace, namespace) or not glob_match(self.name, name):
            return False
        if self.tags and not set(self.tags) <= set(tags):
            return False
        return not self.classifications or not set(self.classifications).isdisjoint(labels)

    def describe(self) -> str:
        """A short phrase naming the matched datasets (``datasets named */raw/*``)."""
        if self.namespace != "*":
            text = f"datasets {self.namespace}:{self.name}"
        elif self.name != "*":
            text = f"datasets named {self.name}"
        else:
            text = "every dataset"
        if self.tags:
            text += " tagged " + ", ".join(self.tags)
        if self.classifications:
            text += " classified " + " or ".join(self.classifications)
        return text


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """A label such as ``pii``: whether it flows downstream and which jobs remove it."""

    name: str
    description: str = ""
    propagate: bool = True
    removed_by: tuple[str, ...] = ()
    """Job globs (``job:NS:NAME`` or just ``NAME``) declared as removing this label."""

    def removed_by_job(self, job_namespace: str, job_name: str) -> bool:
        """Whether a job is declared as declassifying this label."""
        full = f"job:{job_namespace}:{job_name}"
        return any(glob_match(p, full) or glob_match(p, job_name) for p in self.removed_by)


class DatasetRule(msgspec.Struct, frozen=True, kw_only=True):
    """Classifications, owners and column labels attached to matching datasets."""

    match: DatasetMatch
    classifications: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    columns: dict[str, tuple[str, ...]] = {}
    """Column name -> the labels its values carry (``email: [pii]``)."""
    description: str = ""


class Role(msgspec.Struct, frozen=True, kw_only=True):
    """A role; it has every right of the roles it inherits."""

    name: str
    inherits: tuple[str, ...] = ()
    description: str = ""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """A user or service, its roles, groups and attributes."""

    name: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    attributes: dict[str, str] = {}


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """A group of principals; members get the group's roles."""

    name: str
    roles: tuple[str, ...] = ()
    description: str = ""


class Condition(msgspec.Struct, frozen=True, kw_only=True):
    """When an access rule applies: purposes, a time window, attribute values."""

    purposes: tuple[str, ...] = ()
    hours: tuple[int, int] | None = None
    """Minutes after midnight UTC, ``[start, end)``; a window past midnight wraps."""
    days: tuple[str, ...] = ()
    attributes: dict[str, tuple[str, ...]] = {}

    @property
    def empty(self) -> bool:
        """Whether the rule applies unconditionally."""
        return not (self.purposes or self.hours or self.days or self.attributes)


class AccessRule(msgspec.Struct, frozen=True, kw_only=True):
    """Allow or deny some principals some actions on some datasets, maybe with masks."""

    id: str
    effect: Literal["allow", "deny"]
    actions: tuple[str, ...]
    principals: tuple[str, ...] = ()
    """Principal names; ``*`` is everyone."""
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    datasets: tuple[DatasetMatch, ...] = ()
    """Empty: every dataset."""
    classifications: tuple[str, ...] = ()
    """The resource must carry one of these labels (empty: any)."""
    when: Condition = Condition()
    masks: dict[str, str] = {}
    """Column -> mask kind."""
    mask_classifications: dict[str, str] = {}
    """Label -> mask kind, for every column the dataset rules label with it."""
    description: str = ""


class Limit(msgspec.Struct, frozen=True, kw_only=True):
    """At most ``rows`` rows and ``bytes`` bytes per principal in any ``window``."""

    id: str
    window: timedelta
    rows: int | None = None
    bytes: int | None = None
    principals: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


class RetentionRule(msgspec.Struct, frozen=True, kw_only=True):
    """How long matching data must be kept and when it must go."""

    id: str
    match: DatasetMatch
    keep_at_least: timedelta | None = None
    delete_after: timedelta | None = None
    clock: str = "created"
    """``created``, ``last_access`` or ``event:<name>``."""
    action: RetentionAction = "delete"
    mode: RetentionMode = "governance"
    description: str = ""


class Notify(msgspec.Struct, frozen=True, kw_only=True):
    """Where notifications go: a webhook URL (JSON POST) or a command (JSON on stdin)."""

    webhook: str | None = None
    command: tuple[str, ...] | None = None
    timeout: float = 10.0


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """A validated policy document. ``hash`` is the SHA-256 of its canonical content."""

    text: str
    hash: str
    classifications: dict[str, Classification] = {}
    datasets: tuple[DatasetRule, ...] = ()
    roles: dict[str, Role] = {}
    principals: dict[str, Principal] = {}
    groups: dict[str, Group] = {}
    access: tuple[AccessRule, ...] = ()
    limits: tuple[Limit, ...] = ()
    retention: tuple[RetentionRule, ...] = ()
    approvals: int = 0
    """How many policy admins must sign off a change (the proposer counts as one)."""
    notify: Notify | None = None
    salt_env: str | None = None
    """Environment variable holding the salt for ``hash`` masks (default: from the trail's key)."""

    def labels_for(self, namespace: str, name: str, tags: Iterable[str] = ()) -> frozenset[str]:
        """The classification labels the dataset rules attach to a dataset."""
        tags = tuple(tags)
        out: set[str] = set()
        for rule in self.datasets:
            if rule.match.matches(namespace, name, tags):
                out.update(rule.classifications)
        return frozenset(out)

    def owners_for(self, namespace: str, name: str, tags: Iterable[str] = ()) -> tuple[str, ...]:
        """The owners of a dataset, in the order the dataset rules name them."""
        tags = tuple(tags)
        out: dict[str, None] = {}
        for rule in self.datasets:
            if rule.match.matches(namespace, name, tags):
                out.update(dict.fromkeys(rule.owners))
        return tuple(out)

    def columns_for(
        self, namespace: str, name: str, tags: Iterable[str] = ()
    ) -> dict[str, frozenset[str]]:
        """Column -> labels, from every matching dataset rule."""
        tags = tuple(tags)
        out: dict[str, set[str]] = {}
        for rule in self.datasets:
            if rule.match.matches(namespace, name, tags):
                for column, labels in rule.columns.items():
                    out.setdefault(column, set()).update(labels)
        return {c: frozenset(v) for c, v in out.items()}

    def roles_of(self, principal: str) -> frozenset[str]:
        """Every role a principal has: direct, through groups, and inherited."""
        spec = self.principals.get(principal)
        direct: set[str] = set()
        if spec is not None:
            direct.update(spec.roles)
            for group in spec.groups:
                if group in self.groups:
                    direct.update(self.groups[group].roles)
        return _closure(self.roles, direct)

    def groups_of(self, principal: str) -> frozenset[str]:
        """The groups a principal belongs to."""
        spec = self.principals.get(principal)
        return frozenset(spec.groups) if spec is not None else frozenset()

    def is_admin(self, principal: str) -> bool:
        """Whether the principal has the policy-admin role (directly or inherited)."""
        return ADMIN_ROLE in self.roles_of(principal)


def _closure(roles: dict[str, Role], start: Iterable[str]) -> frozenset[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        role = todo.pop()
        if role in seen:
            continue
        seen.add(role)
        if role in roles:
            todo.extend(roles[role].inherits)
    return frozenset(seen)


# -- the document as written (validated shape) ------------------------------------------------

_StrList = list[str]


class _MatchSpec(msgspec.Struct, forbid_unknown_fields=True):
    namespace: str = "*"
    name: str = "*"
    tags: _StrList = []
    classifications: _StrList = []


class _ClassificationSpec(msgspec.Struct, forbid_unknown_fields=True):
    description: str = ""
    propagate: bool = True
    removed_by: _StrList = []


class _DatasetSpec(msgspec.Struct, forbid_unknown_fields=True):
    match: _MatchSpec
    classifications: _StrList = []
    owners: _StrList = []
    columns: dict[str, _StrList] = {}
    description: str = ""


class _RoleSpec(msgspec.Struct, forbid_unknown_fields=True):
    inherits: _StrList = []
    description: str = ""


class _PrincipalSpec(msgspec.Struct, forbid_unknown_fields=True):
    roles: _StrList = []
    groups: _StrList = []
    attributes: dict[str, str] = {}


class _GroupSpec(msgspec.Struct, forbid_unknown_fields=True):
    roles: _StrList = []
    description: str = ""


class _WhenSpec(msgspec.Struct, forbid_unknown_fields=True):
    purpose: _StrList = []
    hours: str | None = None
    days: list[Day] = []
    attributes: dict[str, str | _StrList] = {}


class _MasksSpec(msgspec.Struct, forbid_unknown_fields=True):
    columns: dict[str, MaskKind] = {}
    classifications: dict[str, MaskKind] = {}


class _AccessSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    effect: Literal["allow", "deny"]
    actions: list[Action]
    principals: _StrList = []
    roles: _StrList = []
    groups: _StrList = []
    datasets: list[_MatchSpec] = []
    classifications: _StrList = []
    when: _WhenSpec | None = None
    masks: _MasksSpec | None = None
    description: str = ""


class _LimitSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    window: str
    rows: int | None = None
    bytes: int | None = None
    principals: _StrList = []
    roles: _StrList = []
    groups: _StrList = []


class _RetentionSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    match: _MatchSpec
    keep_at_least: str | None = None
    delete_after: str | None = None
    clock: str = "created"
    action: RetentionAction = "delete"
    mode: RetentionMode = "governance"
    description: str = ""


class _NotifySpec(msgspec.Struct, forbid_unknown_fields=True):
    webhook: str | None = None
    command: str | _StrList | None = None
    timeout: str = "10s"


class _TopSpec(msgspec.Struct, forbid_unknown_fields=True):
    version: Literal[1] = 1
    approvals: int = 0
    classifications: dict[str, Any] = {}
    datasets: list[Any] = []
    roles: dict[str, Any] = {}
    principals: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    access: list[Any] = []
    limits: list[Any] = []
    retention: list[Any] = []
    notify: Any = None
    salt_env: str | None = None


_TOP_KEYS = tuple(_TopSpec.__struct_fields__)


def parse_policy(text: str, *, file: str = "<policy>") -> Policy:
    """Validate a policy document (one or more YAML documents in ``text``) into a :class:`Policy`."""
    return _build_policy(compose(text, file), text, file)


def load_policy(path: str | Path) -> Policy:
    """Load a policy file, or a folder of ``*.yaml``/``*.yml`` files merged in name order."""
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise PolicyError(f"{target}: the folder holds no *.yaml policy files")
        parts: list[str] = []
        documents = []
        for file in files:
            body = _read(file)
            documents.extend(compose(body, str(file)))
            parts.append(f"# file: {file.name}\n{body.rstrip()}\n")
        # Stored as one multi-document stream, which parses back to the same policy.
        return _build_policy(documents, "---\n".join(parts), str(target))
    return parse_policy(_read(target), file=str(target))


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{file}: no such policy file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{file}: cannot read the policy file ({exc})") from None


def _build_policy(documents: list[tuple[dict[str, Any], Source]], text: str, file: str) -> Policy:
    raw, source = merge(documents, file)
    return _Builder(raw, source, text).build()


class _Builder:
    """Turns the validated shape into a :class:`Policy`, checking every cross-reference."""

    def __init__(self, raw: dict[str, Any], source: Source, text: str) -> None:
        self.raw = raw
        self.src = source
        self.text = text

    def build(self) -> Policy:
        # An empty section (``access:`` with nothing under it) is an empty section.
        sections: tuple[str, ...] = ("classifications", "datasets", "roles", "principals")
        sections += ("groups", "access", "limits", "retention")
        given = {k: v for k, v in self.raw.items() if not (k in sections and v is None)}
        top: _TopSpec = convert(given, _TopSpec, (), self.src, allowed=_TOP_KEYS)
        if top.approvals < 0:
            self.src.error(("approvals",), "must be 0 or more")
        classifications = {
            name: self._classification(name, spec) for name, spec in top.classifications.items()
        }
        self.labels = set(classifications)
        roles = {name: self._role(name, spec) for name, spec in top.roles.items()}
        self.roles = set(roles)
        self._check_cycles(roles)
        groups = {name: self._group(name, spec) for name, spec in top.groups.items()}
        self.groups = set(groups)
        principals = {name: self._principal(name, spec) for name, spec in top.principals.items()}
        datasets = tuple(self._dataset(i, spec) for i, spec in enumerate(top.datasets))
        access = tuple(self._access(i, spec) for i, spec in enumerate(top.access))
        self._unique("access", [r.id for r in access])
        limits = tuple(self._limit(i, spec) for i, spec in enumerate(top.limits))
        self._unique("limits", [r.id for r in limits])
        retention = tuple(self._retention(i, spec) for i, spec in enumerate(top.retention))
        self._unique("retention", [r.id for r in retention])
        notify = self._notify(top.notify) if top.notify is not None else None
        return Policy(
            text=self.text,
            hash=hashlib.sha256(canonical_bytes(self.raw)).hexdigest(),
            classifications=classifications,
            datasets=datasets,
            roles=roles,
            principals=principals,
            groups=groups,
            access=access,
            limits=limits,
            retention=retention,
            approvals=top.approvals,
            notify=notify,
            salt_env=top.salt_env,
        )

    # -- helpers --------------------------------------------------------------------

    def _name(self, path: Path_, name: str, what: str) -> None:
        if not _ID.match(name):
            self.src.error(
                path,
                f"{what} {name!r} must start with a letter or digit and hold only letters, "
                "digits, '_', '.', ':' and '-'",
                key=True,
            )

    def _known(self, path: Path_, names: Iterable[str], known: set[str], what: str) -> None:
        for i, name in enumerate(names):
            if name not in known:
                listed = ", ".join(sorted(known)) or "none are declared"
                self.src.error((*path, i), f"unknown {what} {name!r} (declared: {listed})")

    def _unique(self, section: str, ids: list[str]) -> None:
        seen: set[str] = set()
        for i, rule_id in enumerate(ids):
            if rule_id in seen:
                self.src.error((section, i, "id"), f"rule id {rule_id!r} is used twice")
            seen.add(rule_id)
            self._name((section, i, "id"), rule_id, "rule id")

    def _duration(self, path: Path_, text: str) -> timedelta:
        try:
            return parse_duration(text)
        except PolicyError as exc:
            self.src.error(path, str(exc))

    def _match(self, path: Path_, spec: _MatchSpec) -> DatasetMatch:
        self._known((*path, "classifications"), spec.classifications, self.labels, "classification")
        return DatasetMatch(
            namespace=spec.namespace,
            name=spec.name,
            tags=tuple(spec.tags),
            classifications=tuple(spec.classifications),
        )

    def _subjects(self, path: Path_, spec: _AccessSpec | _LimitSpec) -> None:
        self._known((*path, "roles"), spec.roles, self.roles, "role")
        self._known((*path, "groups"), spec.groups, self.groups, "group")
        if not (spec.principals or spec.roles or spec.groups):
            self.src.error(path, "names no one: give principals (or '*'), roles or groups")

    # -- sections -------------------------------------------------------------------

    def _classification(self, name: str, spec: Any) -> Classification:
        path: Path_ = ("classifications", name)
        self._name(path, name, "classification")
        c: _ClassificationSpec = convert(
            spec if spec is not None else {}, _ClassificationSpec, path, self.src
        )
        return Classification(
            name=name,
            description=c.description,
            propagate=c.propagate,
            removed_by=tuple(c.removed_by),
        )

    def _role(self, name: str, spec: Any) -> Role:
        path: Path_ = ("roles", name)
        self._name(path, name, "role")
        r: _RoleSpec = convert(spec if spec is not None else {}, _RoleSpec, path, self.src)
        return Role(name=name, inherits=tuple(r.inherits), description=r.description)

    def _check_cycles(self, roles: dict[str, Role]) -> None:
        for name, role in roles.items():
            self._known(("roles", name, "inherits"), role.inherits, self.roles, "role")
        for name in roles:
            trail = [name]
            todo = [(name, [name])]
            while todo:
                current, chain = todo.pop()
                for parent in roles[current].inherits:
                    if parent == name:
                        self.src.error(
                            ("roles", name, "inherits"),
                            "roles inherit in a circle: " + " -> ".join([*chain, parent]),
                        )
                    if parent not in trail:
                        trail.append(parent)
                        todo.append((parent, [*chain, parent]))

    def _group(self, name: str, spec: Any) -> Group:
        path: Path_ = ("groups", name)
        self._name(path, name, "group")
        g: _GroupSpec = convert(spec if spec is not None else {}, _GroupSpec, path, self.src)
        self._known((*path, "roles"), g.roles, self.roles, "role")
        return Group(name=name, roles=tuple(g.roles), description=g.description)

    def _principal(self, name: str, spec: Any) -> Principal:
        path: Path_ = ("principals", name)
        p: _PrincipalSpec = convert(
            spec if spec is not None else {}, _PrincipalSpec, path, self.src
        )
        self._known((*path, "roles"), p.roles, self.roles, "role")
        self._known((*path, "groups"), p.groups, self.groups, "group")
        return Principal(
            name=name, roles=tuple(p.roles), groups=tuple(p.groups), attributes=dict(p.attributes)
        )

    def _dataset(self, i: int, spec: Any) -> DatasetRule:
        path: Path_ = ("datasets", i)
        d: _DatasetSpec = convert(spec, _DatasetSpec, path, self.src)
        self._known((*path, "classifications"), d.classifications, self.labels, "classification")
        for column, labels in d.columns.items():
            self._known((*path, "columns", column), labels, self.labels, "classification")
        return DatasetRule(
            match=self._match((*path, "match"), d.match),
            classifications=tuple(d.classifications),
            owners=tuple(d.owners),
            columns={c: tuple(v) for c, v in d.columns.items()},
            description=d.description,
        )

    def _when(self, path: Path_, spec: _WhenSpec | None) -> Condition:
        if spec is None:
            return Condition()
        hours = None
        if spec.hours is not None:
            m = _HOURS.match(spec.hours.strip())
            if not m:
                self.src.error((*path, "hours"), f"{spec.hours!r} is not a window like 08:00-18:00")
            h1, m1, h2, m2 = (int(x) for x in m.groups())
            if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
                self.src.error((*path, "hours"), f"{spec.hours!r} names a time that does not exist")
            hours = (h1 * 60 + m1, h2 * 60 + m2)
        attributes = {
            k: (v,) if isinstance(v, str) else tuple(v) for k, v in spec.attributes.items()
        }
        return Condition(
            purposes=tuple(spec.purpose),
            hours=hours,
            days=tuple(spec.days),
            attributes=attributes,
        )

    def _access(self, i: int, spec: Any) -> AccessRule:
        path: Path_ = ("access", i)
        a: _AccessSpec = convert(spec, _AccessSpec, path, self.src)
        if not a.actions:
            self.src.error(
                (*path, "actions"), "names no action; use read, write, export, delete or admin"
            )
        self._subjects(path, a)
        self._known((*path, "classifications"), a.classifications, self.labels, "classification")
        masks = a.masks or _MasksSpec()
        if masks.classifications:
            self._known(
                (*path, "masks", "classifications"),
                masks.classifications,
                self.labels,
                "classification",
            )
        if (masks.columns or masks.classifications) and a.effect == "deny":
            self.src.error((*path, "masks"), "a deny rule cannot mask; masks belong on allow rules")
        return AccessRule(
            id=a.id,
            effect=a.effect,
            actions=tuple(dict.fromkeys(a.actions)),
            principals=tuple(a.principals),
            roles=tuple(a.roles),
            groups=tuple(a.groups),
            datasets=tuple(
                self._match((*path, "datasets", j), m) for j, m in enumerate(a.datasets)
            ),
            classifications=tuple(a.classifications),
            when=self._when((*path, "when"), a.when),
            masks=dict(masks.columns),
            mask_classifications=dict(masks.classifications),
            description=a.description,
        )

    def _limit(self, i: int, spec: Any) -> Limit:
        path: Path_ = ("limits", i)
        lim: _LimitSpec = convert(spec, _LimitSpec, path, self.src)
        self._subjects(path, lim)
        if lim.rows is None and lim.bytes is None:
            self.src.error(path, "limits nothing: give rows, bytes or both")
        for key in ("rows", "bytes"):
            value = getattr(lim, key)
            if value is not None and value < 0:
                self.src.error((*path, key), "must be 0 or more")
        window = self._duration((*path, "window"), lim.window)
        if window <= timedelta(0):
            self.src.error((*path, "window"), "the window must be longer than zero")
        return Limit(
            id=lim.id,
            window=window,
            rows=lim.rows,
            bytes=lim.bytes,
            principals=tuple(lim.principals),
            roles=tuple(lim.roles),
            groups=tuple(lim.groups),
        )

    def _retention(self, i: int, spec: Any) -> RetentionRule:
        path: Path_ = ("retention", i)
        r: _RetentionSpec = convert(spec, _RetentionSpec, path, self.src)
        keep = (
            self._duration((*path, "keep_at_least"), r.keep_at_least) if r.keep_at_least else None
        )
        delete = self._duration((*path, "delete_after"), r.delete_after) if r.delete_after else None
        if keep is None and delete is None:
            self.src.error(path, "says nothing: give keep_at_least, delete_after or both")
        if keep is not None and delete is not None and delete < keep:
            self.src.error(
                (*path, "delete_after"),
                f"deletes after {r.delete_after} but must keep at least {r.keep_at_least}",
            )
        if r.clock not in ("created", "last_access") and not (
            r.clock.startswith("event:") and _ID.match(r.clock[len("event:") :])
        ):
            self.src.error(
                (*path, "clock"),
                f"clock {r.clock!r} is not created, last_access or event:<name> "
                "(e.g. event:account_closed)",
            )
        return RetentionRule(
            id=r.id,
            match=self._match((*path, "match"), r.match),
            keep_at_least=keep,
            delete_after=delete,
            clock=r.clock,
            action=r.action,
            mode=r.mode,
            description=r.description,
        )

    def _notify(self, spec: Any) -> Notify:
        path: Path_ = ("notify",)
        n: _NotifySpec = convert(spec, _NotifySpec, path, self.src)
        if (n.webhook is None) == (n.command is None):
            self.src.error(path, "give exactly one of webhook (a URL) or command")
        if n.webhook is not None and not n.webhook.startswith(("http://", "https://")):
            self.src.error((*path, "webhook"), f"{n.webhook!r} is not an http(s) URL")
        command: tuple[str, ...] | None = None
        if n.command is not None:
            import shlex

            command = (
                tuple(shlex.split(n.command)) if isinstance(n.command, str) else tuple(n.command)
            )
            if not command:
                self.src.error((*path, "command"), "the command is empty")
        timeout = self._duration((*path, "timeout"), n.timeout).total_seconds()
        return Notify(webhook=n.webhook, command=command, timeout=timeout or 10.0)
