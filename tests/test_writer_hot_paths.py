"""What the recording hot path keeps doing while it does less: ids, environment, binding."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import sys
import time
import types
import uuid
from typing import Any

import pytest

import datatrail
from datatrail.capture import _codeinfo
from datatrail.model import _ids, is_uuid7, uuid7, uuid7_time_ms

# -- uuid7 ------------------------------------------------------------------------------


def test_uuid7_is_an_rfc_9562_version_7_id_in_canonical_text() -> None:
    for value in (uuid7() for _ in range(2000)):
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value
        assert is_uuid7(value)


def test_uuid7_carries_the_current_unix_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(value) <= after + 1


def test_uuid7_stays_monotonic_when_the_counter_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # A frozen clock: 5,000 ids in one millisecond exhaust the 12-bit counter, and
    # the ids go on increasing by borrowing the next milliseconds.
    frozen = (time.time_ns() // 1_000_000 + 10_000) * 1_000_000
    monkeypatch.setattr(_ids, "_time_ns", lambda: frozen)
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert uuid7_time_ms(ids[0]) == frozen // 1_000_000
    assert uuid7_time_ms(ids[-1]) > uuid7_time_ms(ids[0])
    assert all(is_uuid7(i) for i in ids)


def test_uuid7_stays_monotonic_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time_ns() + 5_000_000_000
    monkeypatch.setattr(_ids, "_time_ns", lambda: now)
    first = uuid7()
    monkeypatch.setattr(_ids, "_time_ns", lambda: now - 1_000_000_000)
    second = uuid7()
    assert second > first
    assert uuid7_time_ms(second) == uuid7_time_ms(first)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.write(write, "\n".join(uuid7() for _ in range(200)).encode())
        finally:
            os._exit(0)
    os.close(write)
    mine = {uuid7() for _ in range(200)}
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    deadline = time.monotonic() + 30
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    theirs = set(b"".join(chunks).decode().split("\n"))
    assert len(theirs) == 200 and all(is_uuid7(i) for i in theirs)
    # Random bits reseeded after the fork: the two processes never make the same id.
    assert not mine & theirs
    assert {i[19:] for i in mine}.isdisjoint({i[19:] for i in theirs})


# -- environment ------------------------------------------------------------------------


@pytest.fixture
def package_map_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count reads of the installed packages' module map; caches start empty."""
    reads: list[int] = []
    real = importlib.metadata.packages_distributions

    def counting() -> Any:
        reads.append(1)
        return real()

    monkeypatch.setattr(importlib.metadata, "packages_distributions", counting)
    _codeinfo.reset_caches()
    yield reads
    _codeinfo.reset_caches()


def _unimported(names: list[str]) -> str:
    for name in names:
        if name not in sys.modules:
            return name
    pytest.skip("every candidate module is imported already")


def test_importing_a_standard_library_module_keeps_the_environment(
    package_map_reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_id, event = _codeinfo.environment()
    assert event is not None and package_map_reads == [1]
    name = _unimported(["colorsys", "xdrlib", "sndhdr", "nntplib", "mailcap", "chunk"])
    assert name in sys.stdlib_module_names
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    assert _codeinfo.environment() == (env_id, None)
    assert package_map_reads == [1]  # the map was not read again


def test_importing_another_top_level_module_reads_the_package_map_again(
    package_map_reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_id, _ = _codeinfo.environment()
    monkeypatch.setitem(sys.modules, "datatrail_test_fresh_module", types.ModuleType("m"))
    assert _codeinfo.environment() == (env_id, None)  # no distribution: the same environment
    assert package_map_reads == [1, 1]


def test_importing_a_submodule_keeps_the_environment(
    package_map_reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_id, _ = _codeinfo.environment()
    monkeypatch.setitem(sys.modules, "datatrail._test_fresh_submodule", types.ModuleType("m"))
    assert _codeinfo.environment() == (env_id, None)
    assert package_map_reads == [1]


def test_two_tracked_runs_read_the_package_map_once(
    trail: Any, package_map_reads: list[int]
) -> None:
    @datatrail.track
    def step(i: int) -> None:
        return None

    step(1)
    step(2)
    t = trail()
    assert len(t.runs()) == 2
    assert package_map_reads == [1]


# -- binding ----------------------------------------------------------------------------


def test_positional_scalars_and_values_bind_by_name(trail: Any) -> None:
    @datatrail.track
    def plain(a: int, b: float, c: Any) -> None:
        return None

    @datatrail.track
    def named(a: int, b: float = 0.5) -> None:
        return None

    plain(1, 0.5, {"k": [1, 2]})
    plain(2, 1.5, c="x")
    named(3)
    named(4, b=2.0)
    t = trail()
    params = sorted((r.params for r in t.runs()), key=lambda p: p["a"])
    assert params == [
        {"a": 1, "b": 0.5, "c": {"k": [1, 2]}},
        {"a": 2, "b": 1.5, "c": "x"},
        {"a": 3, "b": 0.5},
        {"a": 4, "b": 2.0},
    ]
