"""HTTP transport: a pipeline posts its events to a datatrail server.

``DATATRAIL_TRANSPORT=https://lineage.internal:8765`` with ``DATATRAIL_TOKEN``
(a token with the ``producer`` role) sends each writer batch, gzipped, to
``POST /api/v1/events``. The server appends the batch in one transaction and
skips events it already holds, so a batch resent after a timeout is never
doubled. Any failure raises, so the writer spills the batch and replays it
later, exactly as for a store it cannot reach.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Sequence

from datatrail.errors import ConfigError, StoreError
from datatrail.model import Event, encode_event
from datatrail.store import AppendResult

__all__ = ["HttpSink"]


class HttpSink:
    """A writer target that posts batches to a datatrail server (the ``Store.append`` shape)."""

    def __init__(self, url: str, *, token: str | None, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{url!r} is not an HTTP URL")
        self.url = url.rstrip("/")
        self._endpoint = f"{self.url}/api/v1/events"
        self._token = token
        self._timeout = timeout

    def append(self, events: Sequence[Event], *, dedupe: bool = True) -> AppendResult:
        """Post ``events``; returns once the server has committed them."""
        body = gzip.compress(b"\n".join(encode_event(ev) for ev in events), compresslevel=1)
        headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self._endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise StoreError(f"{self.url} refused the batch ({exc.code}): {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise StoreError(f"cannot reach the datatrail server at {self.url}: {exc}") from None
        return AppendResult(
            first_index=-1,
            appended=int(answer.get("appended", 0)),
            duplicates=int(answer.get("duplicates", 0)),
            size=int(answer.get("size", -1)),
            root=b"",
            checkpoint=None,
        )

    def close(self) -> None:
        """Nothing to close: each batch is one request."""
