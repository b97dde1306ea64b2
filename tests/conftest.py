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
