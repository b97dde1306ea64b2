"""``verify``: check a whole store, end to end, and say what is wrong and where.

The order matters only for what a fault can point at: entries are checked
first so that tree and checkpoint faults can name the entry to blame.
"""

from __future__ import annotations

import time
from pathlib import Path

from datatrail.audit._checkpoints import judge_checkpoints, read_checkpoints
from datatrail.audit._collect import Faults
from datatrail.audit._faults import VerifyReport
from datatrail.audit._log import check_erasures, check_tree, scan_events
from datatrail.audit._tables import check_meta, check_migrations, check_projections, check_schema
from datatrail.errors import KeyFileError
from datatrail.ledger import VERIFIER_KEY_FILE, Verifier, load_verifier
from datatrail.store import Progress, Store, find_home

__all__ = ["resolve_verifier", "verify"]


def resolve_verifier(store: Store, verifier: Verifier | str | Path | None) -> Verifier:
    """The key to check checkpoints with: the one given, else the trail folder's ``verifier.key``."""
    if isinstance(verifier, Verifier):
        return verifier
    if verifier is not None:
        return load_verifier(verifier)
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        candidate = path.parent / VERIFIER_KEY_FILE
    else:
        home = find_home()
        candidate = home.verifier_key if home is not None else Path(VERIFIER_KEY_FILE)
    if not candidate.exists():
        raise KeyFileError(
            f"no verifier key at {candidate}; pass the log's public key "
            "(datatrail verify --key FILE or verifier=...)"
        )
    return load_verifier(candidate)


def verify(
    store: Store,
    *,
    verifier: Verifier | str | Path | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check every fact in ``store`` against its hashes, tree, signed checkpoints and projections.

    ``verifier`` is the log's public key (a :class:`~datatrail.ledger.Verifier`,
    key text or a key file); by default the ``verifier.key`` beside the store.
    ``progress(done, total)`` is called as the work advances. Problems with the
    trail are returned as faults, never raised; what a trail recorded by an
    older datatrail stores without a signature binding it is listed in the
    report's ``unbound``, not as a fault. A missing key raises
    :class:`~datatrail.errors.KeyFileError`.
    """
    started = time.perf_counter()
    key = resolve_verifier(store, verifier)
    faults = Faults()
    present = check_schema(store, faults)
    origin = check_meta(store, faults) if "meta" in present else ""
    created_at, migrations = (
        check_migrations(store, faults) if "migrations" in present else (None, [])
    )
    log_ok = {"events", "tree_nodes", "checkpoints"} <= present
    total = 0
    if log_ok:
        rows = store.query("SELECT COUNT(*) FROM events")[0][0]
        total = rows if type(rows) is int else 0

    scale = 2 * total  # one unit per entry for the log pass, one for the projections

    def advance(done: int, offset: int = 0) -> None:
        if progress is not None and scale:
            progress(min(offset + done, scale), scale)

    size, root, latest, read, erased = 0, "", None, 0, []
    if log_ok:
        scan = scan_events(store, faults, advance)
        erased = check_erasures(scan, faults)
        # Signed roots first: the sizes they prove narrow where a mismatching tree node
        # points, and where the tree points, a mismatching root points too.
        opened = read_checkpoints(
            store, scan, faults, verifier=key, origin=origin, created_at=created_at
        )
        check_tree(store, scan, faults)
        read, latest = judge_checkpoints(scan, faults, opened, origin=origin, migrations=migrations)
        size, root = scan.size, scan.root(scan.size).hex()
        del scan  # the leaves are not needed while the projections are derived
        # A projection row may point at an entry the log lost: any index the log or a
        # checkpoint reaches is worth naming.
        reach = max(size, store.size(), latest.size if latest is not None else 0)
        check_projections(
            store,
            faults,
            size=reach,
            present=present,
            progress=lambda done, _total: advance(done, total),
        )
    advance(total, total)
    return VerifyReport(
        ok=faults.total == 0,
        size=size,
        root=root,
        latest_checkpoint=latest,
        faults=faults.items,
        first_fault=faults.first,
        faults_total=faults.total,
        erased=erased,
        checkpoints=read,
        seconds=round(time.perf_counter() - started, 3),
        unbound=faults.unbound_items,
    )
