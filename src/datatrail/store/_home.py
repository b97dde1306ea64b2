"""Where a trail lives: the ``.datatrail/`` folder and ``DATATRAIL_URL``.

``datatrail init`` makes ``.datatrail/`` in the current project: the SQLite
store (``trail.db``), the checkpoint signing key pair and a starter
``policy.yaml``. With no configuration the library looks for ``.datatrail/``
in the working directory and its parents, and makes one in the working
directory if there is none. ``DATATRAIL_URL`` points elsewhere
(``sqlite:///path/to/trail.db``, ``postgresql://…``); ``DATATRAIL_HOME``
names the folder that holds the keys for such a store.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from datatrail.errors import ConfigError, KeyFileError
from datatrail.ledger import Signer, generate_keypair, load_signer
from datatrail.store._postgres import PostgresStore
from datatrail.store._sqlite import SQLiteStore

__all__ = ["HOME_DIRNAME", "Home", "find_home", "init_home", "open_store"]

HOME_DIRNAME = ".datatrail"
STORE_FILE = "trail.db"
SIGNING_KEY = "signing.key"
VERIFIER_KEY = "verifier.key"
POLICY_FILE = "policy.yaml"

_STARTER_POLICY = """\
# datatrail policy: classifications, access rules and retention.
# See docs/policy.md for the full reference. An empty policy allows nothing to be
# read through the governed path until rules are added.
version: 1
classifications: {}
datasets: []
roles: {}
access: []
retention: []
"""


@dataclass(frozen=True)
class Home:
    """A trail's folder: the store URL and the key files."""

    path: Path
    url: str

    @property
    def signing_key(self) -> Path:
        """The private key that signs checkpoints (mode 0600)."""
        return self.path / SIGNING_KEY

    @property
    def verifier_key(self) -> Path:
        """The public verifier key, in C2SP note format."""
        return self.path / VERIFIER_KEY

    @property
    def policy(self) -> Path:
        """The default policy document."""
        return self.path / POLICY_FILE

    def signer(self) -> Signer | None:
        """The checkpoint signer, if this home has a signing key."""
        if not self.signing_key.exists():
            return None
        return load_signer(self.signing_key)


def _key_name() -> str:
    host = socket.gethostname().split(".")[0] or "localhost"
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in host)
    return f"datatrail-{safe}"


def init_home(directory: str | Path, *, url: str | None = None) -> Home:
    """Make (or complete) a trail folder: store, key pair, starter policy. Idempotent."""
    path = Path(directory).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{path} exists and is not a directory; choose another place for the trail"
        )
    path.mkdir(parents=True, exist_ok=True)
    store_url = url or f"sqlite:///{path / STORE_FILE}"
    home = Home(path=path, url=store_url)
    if not home.signing_key.exists():
        if home.verifier_key.exists():
            raise KeyFileError(
                f"{home.verifier_key} exists without {home.signing_key}; restore the signing key "
                "or remove the verifier key to make a new pair"
            )
        generate_keypair(path, _key_name())
    if not home.policy.exists():
        home.policy.write_text(_STARTER_POLICY)
    store = open_store(store_url, create=True, signer=home.signer())
    store.close()
    return home


def find_home(start: str | Path | None = None) -> Home | None:
    """The trail in use: ``DATATRAIL_URL``/``DATATRAIL_HOME``, else the nearest ``.datatrail/``."""
    url = os.environ.get("DATATRAIL_URL")
    home_env = os.environ.get("DATATRAIL_HOME")
    if home_env:
        path = Path(home_env).expanduser().resolve()
        return Home(path=path, url=url or f"sqlite:///{path / STORE_FILE}")
    if url:
        if url.startswith("sqlite:///"):
            db = Path(url[len("sqlite:///") :])
            return Home(path=db.expanduser().resolve().parent, url=url)
        return Home(path=Path.cwd() / HOME_DIRNAME, url=url)
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / HOME_DIRNAME
        if candidate.is_dir():
            return Home(path=candidate, url=f"sqlite:///{candidate / STORE_FILE}")
    return None


def open_store(
    url: str, *, create: bool = False, signer: Signer | None = None
) -> SQLiteStore | PostgresStore:
    """Open the store a URL names: ``sqlite:///PATH`` (or a plain path), or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :], create=create, signer=signer)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, create=create, signer=signer)
    if "://" in url:
        raise ConfigError(
            f"DATATRAIL_URL {url!r}: unknown scheme; use sqlite:///PATH or postgresql://…"
        )
    return SQLiteStore(url, create=create, signer=signer)
