"""Code version, environment and actor, each computed once and cached.

All of this runs on the writer thread, never on the caller's: git is asked
once per repository per process, a function's source is hashed once, and the
package list is recomputed only when a module that may belong to a distribution
has been imported since.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import inspect
import os
import platform
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import blake3

from datatrail.model import Actor, CodeVersion, Environment, GitInfo, canonical_bytes, now_ts, uuid7

__all__ = ["CodeSite", "actor", "code_version_for", "environment", "git_info"]

_lock = threading.Lock()


def _git(cwd: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@cache
def git_info(directory: str) -> GitInfo | None:
    """The git state of the repository containing ``directory``, or None outside git."""
    cwd = Path(directory)
    if not cwd.is_dir():
        return None
    root = _git(cwd, "rev-parse", "--show-toplevel")
    commit = _git(cwd, "rev-parse", "HEAD")
    if root is None or commit is None:
        return None
    branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    dirty = bool(status and status.strip())
    diff_hash = None
    if dirty:
        diff = _git(cwd, "diff", "HEAD", "--binary") or b""
        diff_hash = "blake3:" + blake3.blake3(diff).hexdigest()
    remote = _git(cwd, "config", "--get", "remote.origin.url")
    return GitInfo(
        commit=commit.decode().strip(),
        branch=(branch or b"").decode().strip() or None,
        dirty=dirty,
        diff_hash=diff_hash,
        root=root.decode().strip(),
        remote=_strip_credentials((remote or b"").decode().strip()) or None,
    )


def _strip_credentials(url: str) -> str:
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def _source_hash(obj: Any) -> str | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    return "blake3:" + blake3.blake3(source.encode()).hexdigest()


def _file_hash(path: str) -> str | None:
    try:
        return "blake3:" + blake3.blake3(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class CodeSite:
    """Where a run's code is: a function, or a file and line for a ``run()`` block.

    Made once per tracked function or block, so the key its code id is cached
    under is built once too, not on every run.
    """

    __slots__ = ("file", "func", "key", "line", "module", "qualname")

    def __init__(
        self,
        *,
        func: Any = None,
        module: str | None,
        qualname: str | None,
        file: str | None,
        line: int | None,
    ) -> None:
        self.func = func
        self.module = module
        self.qualname = qualname
        self.file = file
        self.line = line
        self.key = (id(func) if func is not None else None, module, qualname, file, line)


_emitted_code: dict[tuple[Any, ...], str] = {}


def code_version_for(site: CodeSite) -> tuple[str, CodeVersion | None]:
    """The code id for a function (or a file, for ``run()`` blocks) and its event the first time."""
    known = _emitted_code.get(site.key)  # one dict read is atomic: no lock on the hot path
    if known is not None:
        return known, None
    func, module, qualname, file, line = site.func, site.module, site.qualname, site.file, site.line
    source_hash = _source_hash(func) if func is not None else (_file_hash(file) if file else None)
    git = git_info(str(Path(file).parent)) if file else None
    body = {
        "module": module,
        "qualname": qualname,
        "file": file,
        "line": line,
        "source_hash": source_hash,
        "git": git,
    }
    code_id = "blake3:" + blake3.blake3(canonical_bytes(body)).hexdigest()
    event = CodeVersion(
        id=uuid7(),
        ts=now_ts(),
        code_id=code_id,
        module=module,
        qualname=qualname,
        file=file,
        line=line,
        source_hash=source_hash,
        git=git,
    )
    with _lock:
        _emitted_code[site.key] = code_id
    return code_id, event


# (module count, env id) of the last answer, swapped whole: the hot path reads it unlocked.
_env_known: tuple[int, str | None] = (-1, None)
# The top-level modules and the package map that answer was worked out from.
_env_cache: dict[str, Any] = {"top": frozenset(), "mapping": {}}


def _top_level_modules() -> frozenset[str]:
    return frozenset(
        name.split(".", 1)[0] for name in list(sys.modules) if not name.startswith("_")
    )


def _imported_packages(top: frozenset[str], mapping: Mapping[str, list[str]]) -> dict[str, str]:
    packages: dict[str, str] = {}
    for module in top:
        for dist in mapping.get(module, ()):
            if dist in packages:
                continue
            try:
                packages[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return dict(sorted(packages.items()))


def _same_packages(top: frozenset[str], known: frozenset[str], mapping: Mapping[str, Any]) -> bool:
    """Whether modules ``top`` name the packages ``known`` named, by the last package map.

    Reading the package map costs a tenth of a second or more, so it is skipped when
    the new top-level modules are standard-library ones that no distribution provides.
    """
    if any(name in mapping for name in known - top):
        return False
    stdlib = sys.stdlib_module_names
    return all(name not in mapping and name in stdlib for name in top - known)


def environment() -> tuple[str, Environment | None]:
    """The current environment id, and its event when it is new to this process."""
    global _env_known
    count = len(sys.modules)
    known = _env_known
    if known[0] == count and known[1] is not None:
        return known[1], None
    with _lock:
        known_id, known_top, known_map = _env_known[1], _env_cache["top"], _env_cache["mapping"]
    top = _top_level_modules()
    if known_id is not None and _same_packages(top, known_top, known_map):
        with _lock:
            _env_cache["top"] = top
            _env_known = (count, known_id)
        return known_id, None
    python, implementation, plat = (
        platform.python_version(),
        platform.python_implementation(),
        platform.platform(),
    )
    mapping = importlib.metadata.packages_distributions()
    packages = _imported_packages(top, mapping)
    body = {
        "python": python,
        "implementation": implementation,
        "platform": plat,
        "packages": packages,
    }
    env_id = "blake3:" + blake3.blake3(canonical_bytes(body)).hexdigest()
    with _lock:
        changed = env_id != _env_known[1]
        _env_cache.update(top=top, mapping=mapping)
        _env_known = (count, env_id)
    if not changed:
        return env_id, None
    return env_id, Environment(
        id=uuid7(),
        ts=now_ts(),
        env_id=env_id,
        python=python,
        implementation=implementation,
        platform=plat,
        packages=packages,
    )


@cache
def actor() -> Actor:
    """Who is running this process: the OS user and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return Actor(user=user, host=socket.gethostname())


def reset_caches() -> None:
    """Forget cached code versions and environment (tests, and after fork)."""
    global _env_known
    with _lock:
        _env_known = (-1, None)
        _emitted_code.clear()
        _env_cache.update(top=frozenset(), mapping={})
    git_info.cache_clear()


os.register_at_fork(after_in_child=reset_caches)
