"""Governed writes: an output check that refuses data landing where the policy forbids it.

Installed with :func:`install_governed_writes` (or :func:`enable_if_configured`,
which installs it when the trail's active policy has access rules), it keeps,
per run, the labels its inputs carry (the dataset's own labels, labels lineage
gives recorded artifacts, and labels this process computed for the outputs it
already let through), and before each output is registered:

- drops the labels the run's job is declared as removing, and labels that do
  not propagate;
- refuses data carrying any label other than ``public`` landing in a dataset
  the policy classifies ``public`` (pii may not become public unless a
  declassifying step removed it on the way);
- when the policy has rules for ``write``, asks the engine whether the
  principal may write that dataset with those labels.

A refusal is recorded as an ``access`` record (action ``write``, outcome
``deny``) through the process's writer, in order with the run, and raises
:class:`~datatrail.errors.PolicyDenied` in the producing step; nothing of that
output is registered.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
from collections.abc import Callable

from datatrail.capture import (
    OutputContext,
    emit_record,
    register_io_observer,
    register_output_check,
)
from datatrail.errors import PolicyDenied
from datatrail.governance._classify import classifications_of, dataset_labels
from datatrail.governance._decide import Decision, Engine
from datatrail.store import Home, Store, find_home, open_store

__all__ = [
    "FLOW_RULE",
    "WriteGuard",
    "enable_if_configured",
    "install_governed_writes",
    "principal_name",
]

log = logging.getLogger("datatrail")

FLOW_RULE = "classification-flow"
"""The rule id a refusal names when labelled data would land in a public dataset."""
PUBLIC = "public"
_MEMO_LIMIT = 100_000


def principal_name() -> str:
    """Who is acting: ``$DATATRAIL_PRINCIPAL``, else the OS user."""
    named = os.environ.get("DATATRAIL_PRINCIPAL")
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class WriteGuard:
    """The output check and io observer pair; one per trail."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = Engine(store)
        self._lock = threading.Lock()
        self._runs: dict[str, set[str]] = {}
        self._artifacts: dict[str, frozenset[str]] = {}

    # -- labels ----------------------------------------------------------------------

    def _input_labels(self, ctx: OutputContext) -> set[str]:
        policy = self.engine.policy
        labels: set[str] = set(self._artifacts.get(ctx.artifact.id, ()))
        if ctx.dataset is not None:
            labels.update(
                dataset_labels(self.store, policy, ctx.dataset.namespace, ctx.dataset.name)
            )
        if ctx.artifact.id not in self._artifacts:
            try:
                labels.update(
                    classifications_of(self.store, "artifact:" + ctx.artifact.id, policy=policy)
                )
            except Exception:  # an artifact this store does not know yet: no recorded labels
                log.debug("datatrail: no lineage labels for %s", ctx.artifact.id)
        return labels

    def carried(self, ctx: OutputContext) -> frozenset[str]:
        """The labels an output would carry."""
        self.engine.refresh()
        policy = self.engine.policy
        with self._lock:
            labels = set(self._runs.get(ctx.run_id, ())) | set(
                self._artifacts.get(ctx.artifact.id, ())
            )
        if policy is not None:
            for label in list(labels):
                spec = policy.classifications.get(label)
                if spec is None:
                    continue
                if not spec.propagate or spec.removed_by_job(ctx.job.namespace, ctx.job.name):
                    labels.discard(label)
        return frozenset(labels)

    # -- hooks -------------------------------------------------------------------------

    def observe(self, ctx: OutputContext) -> None:
        """Remember what each run read and what each output carries."""
        if ctx.role == "input":
            labels = self._input_labels(ctx)
            with self._lock:
                self._runs.setdefault(ctx.run_id, set()).update(labels)
                if ctx.parent_run_id is not None:
                    # A parent run's own outputs derive from what its steps read.
                    self._runs.setdefault(ctx.parent_run_id, set()).update(labels)
        else:
            carried = self.carried(ctx)
            with self._lock:
                if len(self._artifacts) >= _MEMO_LIMIT:
                    self._artifacts.clear()
                self._artifacts[ctx.artifact.id] = carried

    def check(self, ctx: OutputContext) -> None:
        """Refuse an output that breaks the policy (raises :class:`PolicyDenied`)."""
        if ctx.dataset is None:
            return
        policy = self.engine.policy
        node = ctx.dataset.node_id()
        carried = self.carried(ctx)
        target = set(dataset_labels(self.store, policy, ctx.dataset.namespace, ctx.dataset.name))
        principal = principal_name()
        decision: Decision | None = None
        if PUBLIC in target:
            leaking = sorted(carried - {PUBLIC})
            if leaking:
                decision = Decision(
                    outcome="deny",
                    rules=(FLOW_RULE,),
                    policy_version=self.engine.version or 0,
                    reason=(
                        f"{ctx.job.name} may not write {node}: the data carries "
                        f"{', '.join(leaking)} and the dataset is classified public; add a step "
                        "the policy declares as removing it (classifications.<label>.removed_by)"
                    ),
                    policy_hash=policy.hash if policy is not None else "",
                )
        compiled_writes = policy is not None and any("write" in r.actions for r in policy.access)
        if decision is None and compiled_writes:
            verdict = self.engine.decide(principal, "write", node, labels=carried | target)
            if not verdict.allowed:
                decision = verdict
        if decision is None:
            return
        try:
            emit_record(
                "access",
                subject=node,
                data={
                    "principal": principal,
                    "action": "write",
                    "purpose": None,
                    "outcome": "deny",
                    "rules": list(decision.rules),
                    "policy_version": decision.policy_version,
                    "reason": decision.reason,
                    "rows": ctx.artifact.rows,
                    "bytes": ctx.artifact.size,
                    "masked": [],
                    "via": "python",
                    "run_id": ctx.run_id,
                    "labels": sorted(carried),
                },
            )
        except Exception:
            log.exception("datatrail: the refused write could not be recorded")
        raise PolicyDenied(decision.reason, decision)


_installed: dict[str, Callable[[], None]] = {}
_install_lock = threading.Lock()


def install_governed_writes(home: Home | None = None) -> Callable[[], None]:
    """Register the governed-write check for a trail (default: the one in use); returns its remover."""
    from datatrail.capture import settings

    target = home or settings().home or find_home()
    if target is None:
        raise PolicyDenied(
            "governed writes need a trail; run `datatrail init` or configure(home=...)"
        )
    with _install_lock:
        if target.url in _installed:
            return _installed[target.url]
        guard = WriteGuard(open_store(target.url, create=False, signer=None))
        remove_check = register_output_check(guard.check)
        remove_observer = register_io_observer(guard.observe)

        def remove() -> None:
            remove_check()
            remove_observer()
            with _install_lock:
                _installed.pop(target.url, None)
            guard.store.close()

        _installed[target.url] = remove
        return remove


def enable_if_configured(home: Home | None = None) -> bool:
    """Install governed writes when the trail's active policy has access rules; never raises."""
    try:
        from datatrail.capture import settings
        from datatrail.governance._versions import active_policy

        target = home or settings().home or find_home()
        if target is None:
            return False
        store = open_store(target.url, create=False, signer=None)
        try:
            active = active_policy(store)
        finally:
            store.close()
        if active is None or not active.policy.access:
            return False
        install_governed_writes(target)
        return True
    except Exception:
        log.exception("datatrail: governed writes could not be enabled")
        return False
