"""Process-wide recording settings and the writer, resettable by ``configure``.

Settings come from ``configure()`` or the environment (``DATATRAIL_URL``,
``DATATRAIL_LEVEL``, ``DATATRAIL_NAMESPACE``, ``DATATRAIL_DISABLED``); nothing
is read or opened at import time. The writer starts on the first recorded run.

``DATATRAIL_TRANSPORT=nats://host:4222`` sends events to a NATS JetStream
stream instead of writing the store directly; ``datatrail ingest`` workers
commit them. Spill files then go to ``DATATRAIL_SPILL_DIR`` (default
``.datatrail/spill`` under the working directory); ``DATATRAIL_NATS_STREAM`` and
``DATATRAIL_NATS_SUBJECT`` name the stream (default ``DATATRAIL``, ``datatrail.events``).
Runs keep the environment variables named in ``DATATRAIL_ENV_ALLOWLIST``
(comma-separated; default: CI and build identifiers such as ``GITHUB_SHA``), and
no others. ``DATATRAIL_TRANSPORT=https://server:8765`` posts events to a datatrail server
instead, with the token in ``DATATRAIL_TOKEN`` (role ``producer``).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

from datatrail.capture._codeinfo import reset_caches
from datatrail.emit import FlushResult, Writer
from datatrail.errors import ConfigError, UsageError
from datatrail.store import HOME_DIRNAME, Home, Store, find_home, init_home, open_store

__all__ = ["LEVELS", "Settings", "configure", "flush", "get_writer", "settings"]

log = logging.getLogger("datatrail")

Level = Literal["minimal", "standard", "full"]
LEVELS: Final = ("minimal", "standard", "full")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def check_level(level: str) -> Level:
    """Validate a recording level name."""
    if level not in LEVELS:
        raise UsageError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    return level  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    """How this process records."""

    level: Level = "standard"
    namespace: str = "default"
    enabled: bool = True
    home: Home | None = None


def _from_env() -> Settings:
    level = os.environ.get("DATATRAIL_LEVEL", "standard")
    if level not in LEVELS:
        log.warning("datatrail: DATATRAIL_LEVEL=%r is not a level; using standard", level)
        level = "standard"
    disabled = os.environ.get("DATATRAIL_DISABLED", "").lower() in ("1", "true", "yes")
    return Settings(
        level=level,  # type: ignore[arg-type]
        namespace=os.environ.get("DATATRAIL_NAMESPACE", "default"),
        enabled=not disabled,
    )


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings = _from_env()
        self.writer: Writer | None = None


_state = _State()


def settings() -> Settings:
    """The current recording settings."""
    return _state.settings


def configure(
    *,
    home: str | Path | Home | _Unset | None = UNSET,
    level: str | _Unset = UNSET,
    namespace: str | _Unset = UNSET,
    enabled: bool | _Unset = UNSET,
) -> Settings:
    """Change how this process records; flushes and restarts the writer if the trail changes.

    ``home`` is a trail folder (made if missing) or ``None`` to go back to the default
    (``DATATRAIL_URL`` or the nearest ``.datatrail/``).
    """
    with _state.lock:
        current = _state.settings
        new = current
        if not isinstance(level, _Unset):
            new = replace(new, level=check_level(level))
        if not isinstance(namespace, _Unset):
            if not namespace or ":" in namespace:
                raise UsageError(f"namespace {namespace!r} must be non-empty and contain no ':'")
            new = replace(new, namespace=namespace)
        if not isinstance(enabled, _Unset):
            new = replace(new, enabled=bool(enabled))
        if not isinstance(home, _Unset):
            if home is None or isinstance(home, Home):
                new = replace(new, home=home)
            else:
                new = replace(new, home=init_home(home))
            _close_writer_locked()
        _state.settings = new
        return new


def _close_writer_locked() -> None:
    if _state.writer is not None:
        _state.writer.close()
        _state.writer = None
    # Code versions and environments are emitted once per trail: a new trail needs them again.
    reset_caches()


def _resolve_home(current: Settings) -> Home:
    if current.home is not None:
        return current.home
    found = find_home()
    if found is not None:
        if found.url.startswith("sqlite:///") and not Path(found.url[len("sqlite:///") :]).exists():
            return init_home(found.path, url=found.url)
        return found
    return init_home(Path.cwd() / HOME_DIRNAME)


def get_writer() -> Writer:
    """The process's writer, started on first use."""
    writer = _state.writer
    if writer is not None:
        return writer
    with _state.lock:
        if _state.writer is None:
            transport = os.environ.get("DATATRAIL_TRANSPORT", "").strip()
            if transport:
                _state.writer = _transport_writer(transport)
                return _state.writer
            home = _resolve_home(_state.settings)
            if not home.signing_key.exists() and home.url.startswith("sqlite:///"):
                raise ConfigError(
                    f"{home.path} has no signing key; run `datatrail init {home.path.parent}`"
                )

            def opener(home: Home = home) -> Store:
                return open_store(home.url, create=True, signer=home.signer())

            _state.writer = Writer(opener, spill_dir=home.path / "spill")
            _install_extensions(home)
        return _state.writer


def _install_extensions(home: Home) -> None:
    """Switch on what the trail asks for: governed writes, data contracts, the artifact cache.

    Each is imported only here (they build on capture) and each is idempotent; one
    that fails is logged and left off, never raised into the pipeline.
    """
    try:
        from datatrail.governance import enable_if_configured

        enable_if_configured(home)
    except Exception:
        log.exception("datatrail: governed writes could not be switched on")
    try:
        from datatrail.contracts import install

        install()
    except Exception:
        log.exception("datatrail: data contract checks could not be switched on")
    try:
        from datatrail.capture._hooks import register_run_facets

        # Read now, as the first run starts; with none of the variables set there is
        # nothing to keep, and no provider for every run to call.
        if _environment_variables() is not None:
            register_run_facets(_environment_variables)
    except Exception:
        log.exception("datatrail: allowlisted environment variables will not be recorded")
    try:
        from datatrail.reproduce import install_cache

        install_cache()  # keeps content only for runs at level full
    except Exception:
        log.exception("datatrail: the artifact cache could not be switched on")


def _env_allowlist() -> tuple[str, ...]:
    named = os.environ.get("DATATRAIL_ENV_ALLOWLIST")
    if named is not None:
        return tuple(n.strip() for n in named.split(",") if n.strip())
    from datatrail.interop.openlineage import DEFAULT_ENV_ALLOWLIST

    return DEFAULT_ENV_ALLOWLIST


def _environment_variables() -> dict[str, dict[str, str]] | None:
    """The allowlisted environment variables (never others: they may hold secrets).

    Read once per process, on its first run: the variables that describe a build or
    a CI job do not change while it runs, and a run should not pay for reading them.
    """
    global _ALLOWLIST, _ENV_FACET
    if _ALLOWLIST is None:
        _ALLOWLIST = _env_allowlist()
        found = {name: os.environ[name] for name in _ALLOWLIST if name in os.environ}
        _ENV_FACET = {"environmentVariables": found} if found else None
    return _ENV_FACET


_ALLOWLIST: tuple[str, ...] | None = None
_ENV_FACET: dict[str, dict[str, str]] | None = None


def _transport_writer(url: str) -> Writer:
    spill = Path(os.environ.get("DATATRAIL_SPILL_DIR") or Path.cwd() / HOME_DIRNAME / "spill")
    if url.startswith(("http://", "https://")):
        token = os.environ.get("DATATRAIL_TOKEN")

        def http_opener() -> Store:
            from datatrail.emit._http import HttpSink

            return HttpSink(url, token=token)  # type: ignore[return-value]

        return Writer(http_opener, spill_dir=spill)
    if not url.startswith(("nats://", "tls://")):
        raise ConfigError(
            f"DATATRAIL_TRANSPORT={url!r}: unknown transport; use nats://host:4222 or "
            "https://server:8765"
        )

    def opener() -> Store:
        from datatrail.emit._nats import DEFAULT_STREAM, DEFAULT_SUBJECT, NatsSink

        return NatsSink(  # type: ignore[return-value]
            url,
            stream=os.environ.get("DATATRAIL_NATS_STREAM", DEFAULT_STREAM),
            subject=os.environ.get("DATATRAIL_NATS_SUBJECT", DEFAULT_SUBJECT),
        )

    return Writer(opener, spill_dir=spill)


def flush(timeout: float | None = None) -> FlushResult:
    """Make every event recorded so far durable in the store; returns what was written."""
    writer = _state.writer
    if writer is None:
        return FlushResult(durable=0, spilled=0)
    return writer.flush(timeout)


def shutdown() -> None:
    """Flush and stop the writer (the next recorded run starts a new one)."""
    with _state.lock:
        _close_writer_locked()


def _after_fork() -> None:
    _state.lock = threading.Lock()
    _state.writer = None


os.register_at_fork(after_in_child=_after_fork)
