"""The notification hook: a webhook (JSON POST) or a command (JSON on stdin), always recorded.

Data owners hear about policy changes that touch their datasets and about
deletion candidates before retention acts. Every attempt becomes a
``notification`` record with whether it worked and the error if not; a failing
hook is logged and recorded, never raised into the caller.
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.request
from collections.abc import Iterable
from typing import Any

from datatrail.governance._document import Policy
from datatrail.model import Record, now_ts, uuid7
from datatrail.store import Store

__all__ = ["notify", "notify_policy_change"]

log = logging.getLogger("datatrail")
_ERROR_CHARS = 500


def _send(policy: Policy, body: bytes) -> tuple[str, str]:
    hook = policy.notify
    assert hook is not None
    if hook.webhook is not None:
        request = urllib.request.Request(
            hook.webhook,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "datatrail"},
        )
        with urllib.request.urlopen(request, timeout=hook.timeout) as response:
            status = response.status
        if not 200 <= status < 300:
            raise OSError(f"the webhook answered HTTP {status}")
        return "webhook", hook.webhook
    command = list(hook.command or ())
    done = subprocess.run(
        command, input=body, capture_output=True, timeout=hook.timeout, check=False
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-_ERROR_CHARS:]
        raise OSError(f"the command exited with {done.returncode}: {tail}")
    return "command", " ".join(command)


def notify(
    store: Store,
    policy: Policy | None,
    event: str,
    recipients: Iterable[str],
    payload: dict[str, Any],
    *,
    subject: str | None = None,
) -> dict[str, Any]:
    """Send one notification through the policy's hook and record it; never raises.

    Returns the ``notification`` record's data. Without a hook in the policy the
    notification is still recorded, with ``ok`` false and the reason.
    """
    who = sorted(set(recipients))
    message = {"event": event, "recipients": who, "payload": payload, "ts": now_ts()}
    data: dict[str, Any] = {
        "channel": None,
        "target": None,
        "event": event,
        "recipients": who,
        "payload": payload,
        "ok": False,
        "error": None,
    }
    if policy is None or policy.notify is None:
        data["error"] = "the policy configures no notification hook (notify: webhook or command)"
    else:
        data["channel"] = "webhook" if policy.notify.webhook else "command"
        data["target"] = policy.notify.webhook or " ".join(policy.notify.command or ())
        try:
            body = json.dumps(message, sort_keys=True, default=str).encode()
            data["channel"], data["target"] = _send(policy, body)
            data["ok"] = True
        except Exception as exc:
            data["error"] = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
            log.warning("datatrail: notification %r failed: %s", event, data["error"])
    try:
        store.append(
            [
                Record(
                    id=uuid7(),
                    ts=now_ts(),
                    topic="notification",
                    subject=subject,
                    data=data,
                )
            ],
            dedupe=False,
        )
    except Exception:
        log.exception("datatrail: a notification could not be recorded")
    return data


def _footprint(policy: Policy | None, namespace: str, name: str) -> dict[str, Any]:
    if policy is None:
        return {"labels": [], "access": [], "retention": []}
    labels = policy.labels_for(namespace, name)
    return {
        "labels": sorted(labels),
        "access": sorted(
            f"{r.effect}:{r.id}"
            for r in policy.access
            if not r.datasets or any(m.matches(namespace, name, (), labels) for m in r.datasets)
        ),
        "retention": sorted(
            r.id for r in policy.retention if r.match.matches(namespace, name, (), labels)
        ),
    }


def notify_policy_change(
    store: Store, old: Policy | None, new: Policy, version: int
) -> list[dict[str, Any]]:
    """Tell each data owner what version ``version`` changes for their recorded datasets."""
    per_owner: dict[str, list[dict[str, Any]]] = {}
    for namespace, name in store.query(
        "SELECT namespace, name FROM datasets ORDER BY namespace, name"
    ):
        before = _footprint(old, namespace, name)
        after = _footprint(new, namespace, name)
        if before == after:
            continue
        owners = set(new.owners_for(namespace, name))
        if old is not None:
            owners.update(old.owners_for(namespace, name))
        change = {"dataset": f"dataset:{namespace}:{name}", "before": before, "after": after}
        for owner in owners:
            per_owner.setdefault(owner, []).append(change)
    return [
        notify(
            store,
            new,
            "policy.changed",
            [owner],
            {"version": version, "datasets": changes},
            subject=f"policy:{version}",
        )
        for owner, changes in sorted(per_owner.items())
    ]
