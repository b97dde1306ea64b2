"""Recording runs: decorators, contexts, nesting, failures, redaction, levels, identity."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from pathlib import Path

import pandas as pd
import pytest

import datatrail
from datatrail.capture._hashing import ContentHash, register_hasher
from datatrail.errors import HashingError, UsageError


@datatrail.track
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@datatrail.track
async def async_double(x: int) -> int:
    """Double, asynchronously."""
    await asyncio.sleep(0)
    return x * 2


@datatrail.track
def count_up(n: int):
    """Yield 0..n-1."""
    yield from range(n)


@datatrail.track
async def acount(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


def test_track_keeps_name_doc_and_signature():
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)
    assert list(inspect.signature(add).parameters) == ["a", "b"]
    assert inspect.iscoroutinefunction(async_double)
    assert inspect.isgeneratorfunction(count_up)
    assert inspect.isasyncgenfunction(acount)


def test_sync_call_is_a_completed_run_with_params_and_output(trail):
    assert add(3) == 5
    t = trail()
    (run,) = t.runs()
    assert run.job_name == f"{__name__}.add"
    assert run.status == "completed"
    assert run.params == {"a": 3, "b": 2}
    detail = t.run(run.run_id)
    assert [o.label for o in detail.outputs] == ["return"]
    assert detail.code is not None and detail.code["qualname"] == "add"
    assert detail.code["source_hash"].startswith("blake3:")
    assert detail.environment is not None and detail.environment["python"]
    assert detail.actor is not None and detail.actor["user"]


def test_async_generator_and_async_generator_runs_are_recorded(trail):
    assert asyncio.run(async_double(4)) == 8
    assert list(count_up(3)) == [0, 1, 2]

    async def consume():
        return [i async for i in acount(2)]

    assert asyncio.run(consume()) == [0, 1]
    t = trail()
    runs = {r.job_name.rsplit(".", 1)[-1]: r for r in t.runs()}
    assert set(runs) == {"async_double", "count_up", "acount"}
    assert all(r.status == "completed" for r in runs.values())
    gen = t.run(runs["count_up"].run_id)
    assert [o.label for o in gen.outputs] == ["yield[0]", "yield[1]", "yield[2]"]


def test_nesting_links_children_to_their_parent(trail):
    @datatrail.track
    def outer(x: int) -> int:
        return add(x) + add(x, 5)

    with datatrail.run("pipeline") as r:
        outer(1)
    t = trail()
    (top,) = t.runs(roots_only=True)
    assert top.run_id == r.run_id
    (mid,) = t.runs(parent=top.run_id)
    assert mid.job_name.endswith("outer")
    leaves = t.runs(parent=mid.run_id)
    assert sorted(x.params["b"] for x in leaves) == [2, 5]


def test_threads_keep_separate_runs_unless_context_is_bound(trail):
    results: dict[str, str | None] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with datatrail.run(name):
            barrier.wait()
            add(1)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("left", "right")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    with datatrail.run("fan-out") as parent:
        seen = []
        worker = threading.Thread(target=datatrail.bind_context(lambda: seen.append(add(7))))
        worker.start()
        worker.join()
        plain = threading.Thread(
            target=lambda: results.setdefault("plain", str(datatrail.current_run()))
        )
        plain.start()
        plain.join()
    t = trail()
    for name in ("left", "right"):
        (run,) = t.runs(job=name)
        (child,) = t.runs(parent=run.run_id)
        assert child.job_name.endswith(".add")
    (bound,) = t.runs(parent=parent.run_id)
    assert bound.params == {"a": 7, "b": 2}
    assert results["plain"] == "None"


def test_asyncio_tasks_are_children_of_the_run_that_spawned_them(trail):
    async def main():
        async with datatrail.run("async-parent") as r:
            await asyncio.gather(*(async_double(i) for i in range(3)))
        return r.run_id

    parent_id = asyncio.run(main())
    children = trail().runs(parent=parent_id)
    assert sorted(c.params["x"] for c in children) == [0, 1, 2]


class Boom(Exception):
    pass


def test_exception_is_recorded_and_reraised_unchanged(trail):
    error = Boom("bad row 17")

    @datatrail.track
    def explode() -> None:
        raise error

    with pytest.raises(Boom) as info:
        explode()
    assert info.value is error
    t = trail()
    run = t.run(t.runs()[0].run_id)
    assert run.status == "failed"
    assert run.error["type"] == f"{__name__}.Boom"
    assert run.error["message"] == "bad row 17"
    assert "raise error" in run.error["traceback"]


def test_failing_run_block_records_failure(trail):
    with pytest.raises(ZeroDivisionError), datatrail.run("divide"):
        _ = 1 / 0
    (run,) = trail().runs()
    assert run.status == "failed" and run.error["type"] == "builtins.ZeroDivisionError"


def test_secrets_are_redacted_by_name_and_type(trail):
    @datatrail.track
    def connect(host: str, password: str, api_key: str, token: object, retries: int = 3) -> None:
        return None

    connect("db", "hunter2", "k-123", datatrail.Secret("tok-456"))
    with datatrail.run("job", params={"db_password": "p4ss", "nested": {"secret": "s3", "ok": 1}}):
        pass
    t = trail()
    params = {r.job_name.rsplit(".", 1)[-1]: r.params for r in t.runs()}
    assert params["connect"] == {
        "host": "db",
        "password": datatrail.REDACTED,
        "api_key": datatrail.REDACTED,
        "token": datatrail.REDACTED,
        "retries": 3,
    }
    assert params["job"] == {
        "db_password": datatrail.REDACTED,
        "nested": {"secret": datatrail.REDACTED, "ok": 1},
    }
    raw = Path(trail.home / "trail.db").read_bytes()
    for secret in (b"hunter2", b"k-123", b"tok-456", b"p4ss", b's3"'):
        assert secret not in raw


def test_levels_control_hashing_and_statistics(trail):
    frame = pd.DataFrame({"x": [1, 2, None], "y": ["a", "b", "c"]})

    @datatrail.track(level="minimal")
    def low(df: pd.DataFrame) -> pd.DataFrame:
        return df

    @datatrail.track(level="full")
    def high(df: pd.DataFrame) -> pd.DataFrame:
        return df

    low(frame)
    high(frame)
    t = trail()
    runs = {r.job_name.rsplit(".", 1)[-1]: t.run(r.run_id) for r in t.runs()}
    assert runs["low"].inputs[0].artifact_id.startswith("uuid:")
    high_out = runs["high"].outputs[0]
    assert high_out.artifact_id.startswith("blake3:")
    stats = t.artifact(high_out.artifact_id).stats
    assert stats is not None and stats["columns"]["x"]["nulls"] == 1


class Token:
    """A value type with a counting hasher, to see when hashing happens."""

    calls = 0

    def __init__(self, value: str) -> None:
        self.value = value


def _hash_token(obj: Token) -> ContentHash:
    Token.calls += 1
    import blake3

    return ContentHash(
        digest="blake3:" + blake3.blake3(obj.value.encode()).hexdigest(), kind="token"
    )


register_hasher(Token, _hash_token)


def test_a_produced_object_is_not_hashed_again_by_the_next_step(trail):
    Token.calls = 0

    @datatrail.track
    def make() -> Token:
        return Token("v1")

    @datatrail.track
    def use(tok: Token) -> None:
        return None

    tok = make()
    use(tok)
    use(tok)
    assert Token.calls == 1
    t = trail()
    runs = {r.job_name.rsplit(".", 1)[-1]: r for r in t.runs()}
    produced = t.run(runs["make"].run_id).outputs[0].artifact_id
    used = [t.run(r.run_id).inputs[0].artifact_id for r in t.runs() if r.job_name.endswith(".use")]
    assert used == [produced, produced]


def test_unhashable_values_fall_back_to_identity_with_one_warning(trail, caplog):
    class Opaque:
        pass

    @datatrail.track
    def opaque() -> Opaque:
        return Opaque()

    with caplog.at_level(logging.WARNING, logger="datatrail"):
        opaque()
        opaque()
    warnings = [r for r in caplog.records if "no content hasher" in r.getMessage()]
    assert len(warnings) == 1
    outs = [trail().run(r.run_id).outputs[0].artifact_id for r in trail().runs()]
    assert all(o.startswith("uuid:") for o in outs) and len(set(outs)) == 2


def test_a_failing_hasher_never_breaks_the_users_function(trail, caplog):
    class Fragile:
        pass

    def broken(obj: Fragile) -> ContentHash:
        raise RuntimeError("hasher bug")

    register_hasher(Fragile, broken)

    @datatrail.track
    def produce() -> Fragile:
        return Fragile()

    with caplog.at_level(logging.ERROR, logger="datatrail"):
        value = produce()
    assert isinstance(value, Fragile)
    assert any(
        "hasher bug" in (r.exc_text or "") or "failed" in r.getMessage() for r in caplog.records
    )
    (run,) = trail().runs()
    assert run.status == "completed"


def test_file_inputs_and_outputs_name_their_datasets(trail, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    dst = tmp_path / "out.csv"

    @datatrail.track
    def copy(source: Path, target: Path) -> None:
        target.write_text(source.read_text())

    copy(src, dst)
    t = trail()
    run = t.run(t.runs()[0].run_id)
    assert [(i.label, i.dataset) for i in run.inputs] == [
        ("source", f"dataset:file:{src.resolve()}")
    ]
    assert [(o.label, o.dataset) for o in run.outputs] == [
        ("target", f"dataset:file:{dst.resolve()}")
    ]
    assert run.params == {"target": str(dst)}
    # identical bytes: the file's artifact is its content
    assert run.inputs[0].artifact_id == run.outputs[0].artifact_id


def test_misuse_raises(trail, tmp_path):
    with pytest.raises(UsageError, match="no parameter"):
        datatrail.track(inputs=["missing"])(add.__wrapped__)
    with pytest.raises(UsageError):
        datatrail.run("")
    with pytest.raises(UsageError, match="level"):
        datatrail.run("x", level="verbose")
    with datatrail.run("x") as r, pytest.raises(HashingError, match="no such file"):
        r.input(tmp_path / "absent.csv")
    with pytest.raises(UsageError, match="has finished"):
        r.output(b"late")


def test_disabled_recording_is_a_no_op(trail):
    datatrail.configure(enabled=False)
    try:
        assert add(1) == 3
    finally:
        datatrail.configure(enabled=True)
    assert trail().runs() == []


def test_flush_makes_events_durable_and_reports_counts(trail):
    for i in range(50):
        add(i)
    result = datatrail.flush()
    assert result.spilled == 0 and result.dropped == 0
    assert result.durable >= 100  # a start and an end per call
    assert len(trail().runs(limit=1000)) == 50


def test_redaction_matches_words_not_substrings():
    from datatrail.capture._redact import is_secret_name

    for name in (
        "password",
        "api_key",
        "apiKey",
        "authToken",
        "db_password",
        "key",
        "client_secret",
    ):
        assert is_secret_name(name), name
    for name in ("author", "n_tokens", "tokenizer", "sort_key", "bypass", "passage", "keyboard"):
        assert not is_secret_name(name), name


def test_an_existing_path_the_call_rewrites_is_an_input_and_an_output(trail, tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("v\n1\n")

    @datatrail.track
    def rewrite(path: Path) -> None:
        path.write_text("v\n1\n2\n")

    rewrite(target)
    t = trail()
    run = t.run(t.runs()[0].run_id)
    assert [i.label for i in run.inputs] == ["path"]
    assert [o.label for o in run.outputs] == ["path"]
    assert run.inputs[0].artifact_id != run.outputs[0].artifact_id


def test_disabled_recording_inside_a_run_block_writes_nothing(trail, tmp_path):
    out = tmp_path / "x.bin"
    out.write_bytes(b"x")
    datatrail.configure(enabled=False)
    try:
        with datatrail.run("quiet") as r:
            assert r.output(out) is out
    finally:
        datatrail.configure(enabled=True)
    t = trail()
    assert t.runs() == []
    assert t.store.size() == 0


def test_a_returned_scalar_is_an_output_hashed_like_any_value(trail):
    """Numbers and strings are hashed on the writer thread: same artifact, no check sees them."""
    from datatrail.capture import register_output_check
    from datatrail.capture._hashing import hash_value

    seen: list[object] = []
    remove = register_output_check(lambda ctx: seen.append(ctx.value))

    @datatrail.track
    def ratio(a: int, b: int) -> float:
        return a / b

    @datatrail.track
    def label(n: int) -> str:
        return f"batch-{n}"

    @datatrail.track
    def payload(n: int) -> bytes:
        return bytes(n)

    try:
        assert ratio(1, 4) == 0.25
        assert label(7) == "batch-7"
        assert payload(3) == b"\0\0\0"
    finally:
        remove()
    t = trail()
    outputs = {}
    for run in t.runs():
        assert run.status == "completed"
        (out,) = t.run(run.run_id).outputs
        outputs[run.job_name.rsplit(".", 1)[-1]] = out.artifact_id
    for name, value in (("ratio", 0.25), ("label", "batch-7"), ("payload", b"\0\0\0")):
        expected = hash_value(value)
        assert expected is not None
        assert outputs[name] == expected.digest, name
    assert seen == [b"\0\0\0"]  # bytes are data and pass the check; the scalars are values
