"""The content-addressed artifact cache: input and output content kept at level ``full``.

Each artifact is kept once, under its content hash, inside the trail folder::

    .datatrail/cache/<first 2 hex digits>/<hex>        the content (file or directory)
    .datatrail/cache/<first 2 hex digits>/<hex>.json   its manifest

The manifest says how to load the content back (``format``): Parquet for
pandas, polars and Arrow tables, ``.npy`` for numpy arrays, raw bytes, JSON,
file and directory copies, and pickle as the last resort for values Parquet
cannot carry faithfully. A value is only kept if loading it back gives the
same content hash, so a restored input is byte-for-byte what the step saw.

The cache is capped (``max_bytes``, or ``DATATRAIL_CACHE_MAX_BYTES``, default
5 GiB) and evicts least recently used entries; a manifest's modification time
is its last use. Retention treats cached content like any other copy of the
data: :func:`cache_delete` removes an artifact's content.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from datatrail.capture import OutputContext
from datatrail.errors import ConfigError, UsageError
from datatrail.model import ArtifactInfo, format_ts
from datatrail.store import Home, find_home

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ArtifactCache",
    "CacheEntry",
    "CacheStatus",
    "cache_delete",
    "cache_for",
    "cache_observer",
    "cache_path",
    "install_cache",
]

log = logging.getLogger("datatrail")

DEFAULT_MAX_BYTES = 5 * 1024**3
"""The cache's size cap when neither ``max_bytes`` nor ``DATATRAIL_CACHE_MAX_BYTES`` says."""
CACHE_DIRNAME = "cache"


class CacheEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One cached artifact: how it was kept and when it was last used."""

    artifact_id: str
    kind: str
    format: str
    """``parquet-pandas``, ``parquet-polars``, ``parquet-arrow``, ``npy``, ``bytes``, ``json``,
    ``file``, ``directory`` or ``pickle``."""
    bytes: int
    """Bytes on disk."""
    name: str | None = None
    """The original file or directory name, for file and directory copies."""
    created: str
    last_used: str | None = None


class CacheStatus(msgspec.Struct, frozen=True, kw_only=True):
    """How full the cache is."""

    root: str
    entries: int
    bytes: int
    max_bytes: int
    by_format: dict[str, int] = {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``cache status --json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _hex(artifact_id: str) -> str:
    if not artifact_id.startswith("blake3:") or len(artifact_id) != 71:
        raise UsageError(
            f"{artifact_id!r} is not a content-hashed artifact id (blake3:<64 hex digits>); "
            "only those can be cached"
        )
    return artifact_id[7:]


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                continue
    return total


def _max_bytes_from_env() -> int:
    text = os.environ.get("DATATRAIL_CACHE_MAX_BYTES")
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"DATATRAIL_CACHE_MAX_BYTES={text!r} is not a whole number of bytes"
        ) from None
    if value < 0:
        raise ConfigError(f"DATATRAIL_CACHE_MAX_BYTES={text!r} must not be negative")
    return value


def _module_of(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


class ArtifactCache:
    """The artifact cache of one trail folder (``.datatrail/cache``)."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = _max_bytes_from_env() if max_bytes is None else max_bytes
        if self.max_bytes < 0:
            raise UsageError(f"max_bytes must not be negative, not {self.max_bytes}")
        self._lock = threading.Lock()

    # -- paths -----------------------------------------------------------------------

    def _content(self, hex_digest: str) -> Path:
        return self.root / hex_digest[:2] / hex_digest

    def _manifest(self, hex_digest: str) -> Path:
        return self.root / hex_digest[:2] / (hex_digest + ".json")

    def path(self, artifact_id: str) -> Path | None:
        """Where an artifact's content is kept, or None if it is not cached."""
        hex_digest = _hex(artifact_id)
        content, manifest = self._content(hex_digest), self._manifest(hex_digest)
        return content if content.exists() and manifest.exists() else None

    def entry(self, artifact_id: str) -> CacheEntry | None:
        """The manifest of a cached artifact, or None."""
        manifest = self._manifest(_hex(artifact_id))
        try:
            data = msgspec.json.decode(manifest.read_bytes(), type=CacheEntry)
            used = manifest.stat().st_mtime_ns
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return msgspec.structs.replace(data, last_used=format_ts(used))

    def __contains__(self, artifact_id: object) -> bool:
        return isinstance(artifact_id, str) and self.path(artifact_id) is not None

    # -- writing -----------------------------------------------------------------------

    def put(
        self, value: Any, artifact: ArtifactInfo, *, name: str | None = None
    ) -> CacheEntry | None:
        """Keep ``value``'s content under its artifact id; None if it cannot be kept faithfully.

        A value already cached is only touched (its last use updated).
        """
        hex_digest = _hex(artifact.id)
        if self.path(artifact.id) is not None:
            os.utime(self._manifest(hex_digest))
            return self.entry(artifact.id)
        folder = self.root / hex_digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".put-", dir=folder))
        try:
            target = scratch / "content"
            fmt = self._write(value, artifact, target)
            if fmt is None:
                return None
            if name is None and fmt in ("file", "directory"):
                name = Path(os.fspath(value)).name
            entry = CacheEntry(
                artifact_id=artifact.id,
                kind=artifact.kind,
                format=fmt,
                bytes=_tree_bytes(target),
                name=name,
                created=format_ts(time.time_ns()),
            )
            manifest = scratch / "manifest.json"
            manifest.write_bytes(msgspec.json.encode(entry))
            with self._lock:
                content = self._content(hex_digest)
                if content.exists():  # another writer was quicker: same content by definition
                    return self.entry(artifact.id)
                os.replace(target, content)
                os.replace(manifest, self._manifest(hex_digest))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.enforce_cap()
        return entry

    def _write(self, value: Any, artifact: ArtifactInfo, target: Path) -> str | None:
        kind = artifact.kind
        if kind in ("file", "directory"):
            source = Path(os.fspath(value))
            if kind == "file":
                shutil.copyfile(source, target)
            else:
                shutil.copytree(source, target, symlinks=True)
            return kind if self._verify(target, artifact, kind) else None
        fmt = self._write_value(value, kind, target)
        if fmt is not None and self._verify(target, artifact, fmt):
            return fmt
        if fmt == "pickle":
            return None
        # Parquet (or JSON) could not carry this value faithfully: keep it as a pickle.
        _remove(target)
        if self._write_pickle(value, target) and self._verify(target, artifact, "pickle"):
            return "pickle"
        return None

    def _write_value(self, value: Any, kind: str, target: Path) -> str | None:
        module = _module_of(value)
        try:
            if kind == "pandas" and module == "pandas" and hasattr(value, "to_parquet"):
                value.to_parquet(target, engine="pyarrow")
                return "parquet-pandas"
            if kind == "polars" and module == "polars" and hasattr(value, "write_parquet"):
                value.write_parquet(target)
                return "parquet-polars"
            if kind == "arrow" and module == "pyarrow" and hasattr(value, "schema"):
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = value if isinstance(value, pa.Table) else pa.Table.from_batches([value])
                pq.write_table(table, target)
                return "parquet-arrow"
            if kind == "numpy" and module == "numpy":
                import numpy as np

                with target.open("wb") as fh:
                    np.save(fh, value, allow_pickle=False)
                return "npy"
            if kind == "bytes":
                target.write_bytes(bytes(value))
                return "bytes"
            if kind == "text" and isinstance(value, str):
                target.write_text(value, encoding="utf-8")
                return "text"
            if kind == "json":
                from datatrail.model import canonical_bytes

                target.write_bytes(canonical_bytes(value))
                return "json"
        except Exception as exc:
            log.debug("datatrail: cache could not write a %s value natively: %s", kind, exc)
            _remove(target)
        return "pickle" if self._write_pickle(value, target) else None

    @staticmethod
    def _write_pickle(value: Any, target: Path) -> bool:
        import pickle

        try:
            with target.open("wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            _remove(target)
            return False
        return True

    def _verify(self, target: Path, artifact: ArtifactInfo, fmt: str) -> bool:
        from datatrail.capture._hashing import hash_directory, hash_file, hash_value

        digest: str | None
        try:
            if fmt == "file":
                digest = hash_file(target).digest
            elif fmt == "directory":
                digest = hash_directory(target).digest
            else:
                content = hash_value(_load(target, fmt))
                digest = content.digest if content is not None else None
        except Exception as exc:
            log.debug("datatrail: cached %s did not load back: %s", artifact.id, exc)
            return False
        return digest == artifact.id

    # -- reading -----------------------------------------------------------------------

    def load(self, artifact_id: str, *, restore_to: str | os.PathLike[str] | None = None) -> Any:
        """The cached value. Files and directories are copied into ``restore_to`` (a folder,
        made if missing) under their original name, and their new path is returned."""
        content = self.path(artifact_id)
        entry = self.entry(artifact_id)
        if content is None or entry is None:
            raise UsageError(f"artifact {artifact_id} is not in the cache at {self.root}")
        os.utime(self._manifest(_hex(artifact_id)))
        if entry.format in ("file", "directory"):
            if restore_to is None:
                raise UsageError(f"artifact {artifact_id} is a {entry.format}: give restore_to")
            folder = Path(restore_to)
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / (entry.name or _hex(artifact_id))
            if entry.format == "file":
                shutil.copyfile(content, dest)
            else:
                shutil.copytree(content, dest, symlinks=True)
            return dest
        return _load(content, entry.format)

    # -- listing and eviction ----------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every cached artifact, least recently used first."""
        found = []
        if not self.root.is_dir():
            return []
        for manifest in self.root.glob("??/*.json"):
            entry = self.entry("blake3:" + manifest.stem)
            if entry is not None and self._content(manifest.stem).exists():
                found.append(entry)
        return sorted(found, key=lambda e: (e.last_used or "", e.artifact_id))

    def status(self) -> CacheStatus:
        """How many artifacts, how many bytes, the cap."""
        entries = self.entries()
        by_format: dict[str, int] = {}
        for e in entries:
            by_format[e.format] = by_format.get(e.format, 0) + 1
        return CacheStatus(
            root=str(self.root),
            entries=len(entries),
            bytes=sum(e.bytes for e in entries),
            max_bytes=self.max_bytes,
            by_format=dict(sorted(by_format.items())),
        )

    def delete(self, artifact_id: str) -> bool:
        """Remove an artifact's content and manifest; True if it was cached."""
        hex_digest = _hex(artifact_id)
        with self._lock:
            manifest, content = self._manifest(hex_digest), self._content(hex_digest)
            existed = manifest.exists() or content.exists()
            # The manifest goes first: a reader never sees a manifest without its content.
            manifest.unlink(missing_ok=True)
            _remove(content)
        return existed

    def evict(
        self,
        *,
        max_bytes: int | None = None,
        unused_since: str | None = None,
        everything: bool = False,
    ) -> list[CacheEntry]:
        """Remove least recently used entries until the cache fits ``max_bytes`` (default:
        the cap); also every entry not used since ``unused_since``, or all of them."""
        cap = self.max_bytes if max_bytes is None else max_bytes
        if cap < 0:
            raise UsageError(f"max_bytes must not be negative, not {cap}")
        entries = self.entries()
        total = sum(e.bytes for e in entries)
        evicted: list[CacheEntry] = []
        for e in entries:
            stale = unused_since is not None and (e.last_used or "") < unused_since
            if everything or stale or total > cap:
                if self.delete(e.artifact_id):
                    evicted.append(e)
                total -= e.bytes
        return evicted

    def enforce_cap(self) -> list[CacheEntry]:
        """Evict least recently used entries while the cache is over its cap."""
        return self.evict()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _load(path: Path, fmt: str) -> Any:
    if fmt == "parquet-pandas":
        import pandas as pd

        return pd.read_parquet(path, engine="pyarrow")
    if fmt == "parquet-polars":
        import polars as pl

        return pl.read_parquet(path)
    if fmt == "parquet-arrow":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if fmt == "npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if fmt == "bytes":
        return path.read_bytes()
    if fmt == "text":
        return path.read_text(encoding="utf-8")
    if fmt == "json":
        return json.loads(path.read_bytes())
    if fmt == "pickle":
        import pickle

        with path.open("rb") as fh:
            # The cache lives inside the trail folder the user owns: its pickles are their own.
            return pickle.load(fh)
    raise UsageError(f"unknown cache format {fmt!r}")


# -- the trail's cache, and the io observer that fills it --------------------------------

_caches: dict[Path, ArtifactCache] = {}
_caches_lock = threading.Lock()


def _home_path(home: Home | str | os.PathLike[str] | None) -> Path:
    if isinstance(home, Home):
        return home.path
    if home is not None:
        return Path(home).expanduser().resolve()
    from datatrail.capture import settings

    configured = settings().home
    if configured is not None:
        return configured.path
    found = find_home()
    if found is None:
        raise ConfigError("no trail here: run `datatrail init` or configure(home=...) first")
    return found.path


def cache_for(home: Home | str | os.PathLike[str] | None = None) -> ArtifactCache:
    """The artifact cache of a trail folder (default: the trail in use)."""
    path = _home_path(home) / CACHE_DIRNAME
    with _caches_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = ArtifactCache(path)
        return cache


def cache_path(artifact_id: str, home: Home | str | os.PathLike[str] | None = None) -> Path | None:
    """Where an artifact's content is cached in a trail, or None (for retention)."""
    return cache_for(home).path(artifact_id)


def cache_delete(artifact_id: str, home: Home | str | os.PathLike[str] | None = None) -> bool:
    """Delete an artifact's cached content from a trail; True if it was there (for retention)."""
    return cache_for(home).delete(artifact_id)


def cache_observer(ctx: OutputContext) -> None:
    """The io observer that keeps each input and output of a ``full``-level run in the cache."""
    if ctx.level != "full" or not ctx.artifact.id.startswith("blake3:"):
        return
    entry = cache_for().put(ctx.value, ctx.artifact)
    if entry is None:
        log.info(
            "datatrail: %s %r (%s) could not be cached faithfully; a replay cannot restore it",
            ctx.role,
            ctx.label,
            ctx.artifact.kind,
        )


def install_cache() -> Callable[[], None]:
    """Register :func:`cache_observer`; returns the function that removes it."""
    from datatrail.capture import register_io_observer

    return register_io_observer(cache_observer)
