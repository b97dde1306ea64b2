"""The output check: every output of a dataset with a contract is checked before it registers.

:func:`install` registers one :class:`ContractChecker` with
``datatrail.capture.register_output_check``. The checker knows the contracts of
the trail in use: the newest version of each recorded in the log, and the
trail folder's ``contracts.yaml`` (or ``contracts/`` folder), which wins and is
recorded as a new version whenever it changes. Both are cached; the file is
re-read when its modification time or size changes, the log every few seconds.

For each output of such a dataset at level ``standard`` or ``full`` the check
appends a ``contract.check`` record (subject: the artifact's node id). When it
fails, the contract's mode decides: ``warn`` logs a warning, ``alert`` also
appends an ``alert`` record (kind ``contract``) and notifies, ``block`` does
both and raises :class:`~datatrail.errors.ContractViolation`, so the output is
never registered and the producing step fails with that error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datatrail.capture import OutputContext, emit_record, register_output_check
from datatrail.contracts._evaluate import CheckResult, evaluate
from datatrail.contracts._spec import Contract, contract_hash, load_contracts
from datatrail.errors import ContractViolation, DatatrailError
from datatrail.store import Home, find_home, open_store

__all__ = ["ContractChecker", "contracts_path", "install", "uninstall"]

log = logging.getLogger("datatrail")

LOG_TTL = 2.0
"""Seconds between looks at the log for versions recorded by other processes."""


def contracts_path(home: Home) -> Path | None:
    """The trail's contracts: ``contracts.yaml`` or the ``contracts/`` folder, if either exists."""
    for candidate in (home.path / "contracts.yaml", home.path / "contracts"):
        if candidate.exists():
            return candidate
    return None


def _signature(path: Path | None) -> tuple[Any, ...]:
    if path is None:
        return ()
    if path.is_dir():
        return tuple(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(path.iterdir())
            if p.suffix in (".yaml", ".yml")
        )
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


class ContractChecker:
    """The output check for one trail (or for whichever trail is in use, when ``home`` is None)."""

    def __init__(self, home: Home | None = None) -> None:
        self._home = home
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._checked_log = 0.0
        self._contracts: dict[str, tuple[Contract, int]] = {}
        self._found: tuple[Any, Home | None] | None = None

    def home(self) -> Home | None:
        """The trail whose contracts apply."""
        if self._home is not None:
            return self._home
        from datatrail.capture import settings

        current = settings()
        if current.home is not None:
            return current.home
        # Looking for .datatrail/ walks the folders up from here: once per settings, not
        # once per output (settings change identity whenever configure() changes them).
        found = self._found
        if found is None or found[0] is not current:
            found = self._found = (current, find_home())
        return found[1]

    def contracts(self) -> dict[str, tuple[Contract, int]]:
        """Every dataset's contract and its version number, reloaded when anything changed."""
        home = self.home()
        if home is None:
            return {}
        path = contracts_path(home)
        key = (str(home.path), str(path), _signature(path))
        now = time.monotonic()
        with self._lock:
            if key == self._key and now - self._checked_log < LOG_TTL:
                return self._contracts
            self._contracts = self._load(home, path)
            self._key = key
            self._checked_log = now
            return self._contracts

    def _load(self, home: Home, path: Path | None) -> dict[str, tuple[Contract, int]]:
        from datatrail.contracts._versions import latest_contracts, version_record

        declared = load_contracts(path) if path is not None else []
        recorded: dict[str, Any] = {}
        try:
            store = open_store(home.url, create=False)
        except DatatrailError:
            store = None  # no store yet: every declared contract starts at version 1
        if store is not None:
            try:
                recorded = latest_contracts(store)
            finally:
                store.close()
        found = {d: (v.contract, v.version) for d, v in recorded.items()}
        for contract in declared:
            current = recorded.get(contract.dataset)
            if current is not None and current.hash == contract_hash(contract):
                continue
            prior = self._contracts.get(contract.dataset)
            if prior is not None and contract_hash(prior[0]) == contract_hash(contract):
                number = prior[1]  # already recorded by this process, not yet in the store
            else:
                # The writer may not have stored this process's last version yet: count past it.
                known = max(current.version if current else 0, prior[1] if prior else 0)
                number = known + 1
                record = version_record(
                    contract, number, reason=f"declared in {path}", by="contract check"
                )
                emit_record(record.topic, subject=record.subject, data=record.data)
            found[contract.dataset] = (contract, number)
        return found

    def check(self, ctx: OutputContext) -> CheckResult | None:
        """Check one output; None when its dataset has no contract or the level is minimal."""
        if ctx.role != "output" or ctx.dataset is None or ctx.level == "minimal":
            return None
        entry = self.contracts().get(ctx.dataset.node_id())
        if entry is None:
            return None
        contract, version = entry
        schema = ctx.artifact.schema
        if schema is not None:
            schema = [(n, t) for n, t in schema if not n.startswith("__index__")]
        return evaluate(
            contract,
            version=version,
            value=ctx.value,
            schema=schema,
            rows=ctx.artifact.rows,
            artifact=f"artifact:{ctx.artifact.id}",
            run_id=ctx.run_id,
        )

    def __call__(self, ctx: OutputContext) -> None:
        if self._home is None:
            home = self.home()
            if home is not None and str(home.path) in _installed:
                return  # a checker installed for this very trail does the checking
        result = self.check(ctx)
        if result is None:
            return
        emit_record("contract.check", subject=result.artifact, data=result.to_dict())
        if result.success:
            return
        mode = result.mode
        log.warning("datatrail: %s", result.message())
        if mode in ("alert", "block"):
            _alert(result, ctx)
        if mode == "block":
            raise ContractViolation(
                result.message() + "; the output was not registered (contract mode: block)",
                result,
            )


def _alert(result: CheckResult, ctx: OutputContext) -> None:
    try:
        from datatrail.alerts import emit_alert

        failed = ", ".join(
            f"{a.assertion}({a.column})" if a.column else a.assertion for a in result.failures
        )
        emit_alert(
            kind="contract",
            subject=result.dataset,
            key=f"{ctx.run_id}:{result.artifact}",
            severity="critical" if result.mode == "block" else "warning",
            message=f"{result.dataset} broke its contract v{result.contract_version}: {failed}",
            details=result.to_dict(),
        )
    except Exception:
        log.exception("datatrail: could not raise the contract alert; the check goes on")


_installed: dict[str, Callable[[], None]] = {}
_install_lock = threading.Lock()


def install(home: Home | str | Path | None = None) -> Callable[[], None]:
    """Check every output against its dataset's contract; returns a function that removes it.

    Without ``home`` the checker follows whichever trail is in use (``configure`` or the
    nearest ``.datatrail/``). Installing twice for the same trail has no further effect.
    """
    if home is not None and not isinstance(home, Home):
        folder = Path(home).expanduser().resolve()
        home = Home(path=folder, url=f"sqlite:///{folder / 'trail.db'}")
    key = str(home.path) if home is not None else ""
    with _install_lock:
        if key in _installed:
            return _installed[key]
        checker = ContractChecker(home)
        remove_check = register_output_check(checker)

        def remove() -> None:
            with _install_lock:
                _installed.pop(key, None)
            remove_check()

        _installed[key] = remove
        return remove


def uninstall() -> None:
    """Remove every installed contract check."""
    for remove in list(_installed.values()):
        remove()
