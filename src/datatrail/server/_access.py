"""Every read through the API or the web UI is an access event.

An authenticated GET (an API route or a UI page) becomes an ``access`` record,
as a governed data read does: the principal, the route, the node read when the
request names one, the decision (``allow``, or ``deny`` with the reason) and
the purpose if given. These reads are decided by the caller's role, not by a
policy, so the record says ``decided_by: role``, has no policy version and uses
the action ``view`` (metadata), leaving ``read`` to governed data reads.

Refused reads are recorded too: a role that may not call the route (403), and
a token the trail knows but that was revoked or has expired (401). A request
with no token, or one the trail never issued, is refused without a record:
anyone can send those, and an append-only log must not grow at a stranger's
pace.

Records are queued and appended in batches by a background
:class:`~datatrail.emit.Writer` on its own store connection, so a read adds no
commit to its request. When the store does not answer, the writer spills the
records to a file (fsynced) and replays them when it does; closing the app (its
lifespan's end, or interpreter exit) flushes the queue.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from datatrail.emit import FlushResult, Writer
from datatrail.model import Actor, Record, now_ts, uuid7
from datatrail.server._auth import Principal
from datatrail.store import HOME_DIRNAME, Home, Store

__all__ = ["ACCESS_TOPIC", "AccessLog", "spill_dir_for"]

ACCESS_TOPIC = "access"
_MAX_VALUE = 500
"""Query values longer than this are cut in the record (node ids stay whole in ``subject``)."""


def spill_dir_for(home: Home | None) -> Path:
    """Where a server's access records wait when the store does not answer.

    A folder of its own under the trail's spill folder: a pipeline's writer in
    the same process names its spill file by process id too, so the two must
    not share a folder.
    """
    if home is not None:
        return home.path / "spill" / "server"
    named = os.environ.get("DATATRAIL_SPILL_DIR")
    base = Path(named) if named else Path.cwd() / HOME_DIRNAME / "spill"
    return base / "server"


class _Borrowed:
    """A store the app was given: the writer may use it but must not close it."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def close(self) -> None:
        """The owner closes it."""


class AccessLog:
    """The app's access records: built on the request's thread, appended in the background."""

    def __init__(
        self,
        store: Store,
        *,
        home: Home | None = None,
        spill_dir: Path | None = None,
    ) -> None:
        self._home = home
        self._store = store
        self.spill_dir = spill_dir if spill_dir is not None else spill_dir_for(home)
        self._writer: Writer | None = None
        self._lock = threading.Lock()
        self._host = socket.gethostname()

    def _open(self) -> Store:
        home = self._home
        if home is None:
            return cast(Store, _Borrowed(self._store))
        # Its own connection, so appends never queue behind the requests' reads.
        from datatrail.store import open_store

        return open_store(home.url, create=False, signer=home.signer())

    def _get_writer(self) -> Writer:
        writer = self._writer
        if writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = Writer(self._open, spill_dir=self.spill_dir, linger=0.05)
                writer = self._writer
        return writer

    def record(
        self,
        principal: Principal,
        *,
        via: str,
        route: str,
        node: str | None,
        allowed: bool,
        reason: str,
        status: int,
        purpose: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue the ``access`` record of one read (or refused read)."""
        data = {
            "principal": principal.name,
            "role": principal.role,
            "token_id": principal.token_id,
            "action": "view",
            "purpose": purpose or None,
            "outcome": "allow" if allowed else "deny",
            "decided_by": "role",
            "rules": [f"role:{principal.role}"] if allowed else [],
            "policy_version": None,
            "reason": reason,
            "rows": None,
            "bytes": None,
            "masked": [],
            "via": via,
            "resource": node or route,
            "route": route,
            "status": status,
            "query": {k: _cut(v) for k, v in (query or {}).items() if v is not None},
        }
        self._get_writer().submit(
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic=ACCESS_TOPIC,
                subject=node,
                data=data,
                actor=Actor(user=principal.name, host=self._host),
            )
        )

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Block until every record queued so far is in the store (or spilled)."""
        writer = self._writer
        if writer is None:
            return FlushResult(durable=0, spilled=0)
        return writer.flush(timeout)

    def close(self) -> None:
        """Append what is queued and stop the writer (the app's shutdown).

        A record made afterwards starts a new writer: test clients may run an app's
        lifespan more than once.
        """
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_VALUE:
        return value[:_MAX_VALUE] + "…"
    return value
