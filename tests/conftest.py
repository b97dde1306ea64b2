"""Shared fixtures for the datatrail test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared conformance data (``../shared/testdata``); it must be there."""
    if not SHARED_TESTDATA.is_dir():
        pytest.fail(
            f"shared test data not found at {SHARED_TESTDATA}; clone the project next to shared/"
        )
    return SHARED_TESTDATA


@pytest.fixture
def trail(tmp_path: Path):
    """Record into a fresh trail under ``tmp_path``; yields a function that flushes and opens it."""
    import datatrail
    from datatrail.capture import shutdown

    home = tmp_path / ".datatrail"
    datatrail.configure(home=home, level="standard", enabled=True)

    opened: list[datatrail.Trail] = []

    def read() -> datatrail.Trail:
        datatrail.flush()
        t = datatrail.Trail(home)
        opened.append(t)
        return t

    read.home = home  # type: ignore[attr-defined]
    yield read
    for t in opened:
        t.close()
    shutdown()
    datatrail.configure(home=None, level="standard")
