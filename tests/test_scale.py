"""Scale and resilience against the real servers: NATS JetStream ingestion, PostgreSQL, faults.

Every test counts exactly: producers report what ``flush()`` made durable, the
store must hold exactly that many entries with no id twice, and ``verify``
must pass on the result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import _nats
import _pg
import datatrail
import datatrail.capture
from datatrail.audit import verify
from datatrail.cli import app
from datatrail.emit import replay_orphans, spill_status
from datatrail.emit._nats import NatsSink, ingest
from datatrail.ledger import load_verifier
from datatrail.model import RunFinished, RunStarted, now_ts, uuid7
from datatrail.model._naming import JobRef
from datatrail.store import SQLiteStore, init_home, open_store

PRODUCER = textwrap.dedent(
    """
    import json, sys
    import datatrail

    worker, runs = int(sys.argv[1]), int(sys.argv[2])

    @datatrail.track
    def step(x: int) -> int:
        return x * 2

    for i in range(runs):
        with datatrail.run(f"producer-{worker}", params={"i": i}):
            step(i)
    result = datatrail.flush()
    print(json.dumps({"durable": result.durable, "spilled": result.spilled}), flush=True)
    """
)


def _python(script: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    full = {**os.environ, **env}
    full.pop("DATATRAIL_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=full,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, int]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _check(store_url: str, home: Path, *, expected: int, runs: int) -> None:
    store = open_store(store_url)
    try:
        assert store.size() == expected
        (distinct,) = store.query("SELECT COUNT(DISTINCT id) FROM events")[0]
        assert distinct == expected
        (finished,) = store.query("SELECT COUNT(*) FROM runs WHERE status = 'completed'")[0]
        assert finished == runs
        report = verify(store, verifier=load_verifier(home / "verifier.key"))
        assert report.ok, report.faults[:3]
    finally:
        store.close()


def _runs_events(n: int, job: str = "load") -> list[RunStarted | RunFinished]:
    events: list[RunStarted | RunFinished] = []
    for _ in range(n):
        run_id = uuid7()
        events.append(
            RunStarted(id=uuid7(), ts=now_ts(), run_id=run_id, job=JobRef(namespace="t", name=job))
        )
        events.append(RunFinished(id=uuid7(), ts=now_ts(), run_id=run_id, status="completed"))
    return events


# -- NATS ------------------------------------------------------------------------------


def test_events_published_to_jetstream_are_committed_once_by_a_worker(tmp_path: Path) -> None:
    with _nats.fresh_stream("one") as stream:
        home = init_home(tmp_path / ".datatrail")
        sink = NatsSink(stream.url, stream=stream.name, subject=stream.subject)
        events = _runs_events(500)
        try:
            sink.append(events[:600])
            sink.append(events[600:])
            sink.append(events[:10])  # a producer retrying a batch it already sent
        finally:
            sink.close()
        stats = ingest(
            stream.url,
            lambda: open_store(home.url, signer=home.signer()),
            stream=stream.name,
            subject=stream.subject,
            idle_exit=1.0,
        )
        assert stats.events == 1010
        assert stats.appended == 1000
        assert stats.duplicates == 10
        _check(home.url, home.path, expected=1000, runs=500)


def test_a_worker_killed_mid_batch_and_restarted_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with _nats.fresh_stream("kill") as stream:
        home = init_home(tmp_path / ".datatrail")
        sink = NatsSink(stream.url, stream=stream.name, subject=stream.subject)
        total = 0
        try:
            for _ in range(40):
                batch = _runs_events(1000)
                sink.append(batch)
                total += len(batch)
        finally:
            sink.close()
        cmd = [
            sys.executable,
            "-c",
            "from datatrail.cli import main; main()",
            "ingest",
            "--from",
            stream.url,
            "--to",
            home.url,
            "--home",
            str(home.path),
            "--stream",
            stream.name,
            "--subject",
            stream.subject,
            "--batch",
            "2",
            "--ack-wait",
            "2",
            "--idle-exit",
            "4",
        ]
        worker = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        db = SQLiteStore(home.path / "trail.db")
        try:
            deadline = time.monotonic() + 60
            while db.size() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            killed_at = db.size()
        finally:
            db.close()
        assert 0 < killed_at < total, "the worker was not killed mid-stream"
        restarted = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert restarted.returncode == 0, restarted.stderr
        _check(home.url, home.path, expected=total, runs=total // 2)


def test_two_workers_and_three_producers_at_once_give_the_exact_log(tmp_path: Path) -> None:
    with _nats.fresh_stream("many") as stream:
        home = init_home(tmp_path / ".datatrail")
        stop = threading.Event()
        results: list[object] = []

        def work() -> None:
            try:
                results.append(
                    ingest(
                        stream.url,
                        lambda: open_store(home.url, signer=home.signer()),
                        stream=stream.name,
                        subject=stream.subject,
                        stop=stop,
                        batch=4,
                    )
                )
            except BaseException as exc:  # surfaced by the assertion below
                results.append(exc)

        workers = [threading.Thread(target=work) for _ in range(2)]
        for w in workers:
            w.start()
        producers = [
            _python(
                PRODUCER,
                str(i),
                "300",
                env={**stream.env(), "DATATRAIL_SPILL_DIR": str(tmp_path / f"spill{i}")},
                cwd=tmp_path,
            )
            for i in range(3)
        ]
        reports = [_finish(p) for p in producers]
        durable = sum(r["durable"] for r in reports)
        store = SQLiteStore(home.path / "trail.db")
        try:
            deadline = time.monotonic() + 120
            while store.size() < durable and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            store.close()
        stop.set()
        for w in workers:
            w.join(timeout=30)
        assert all(not isinstance(r, BaseException) for r in results), results
        # Each producer: 300 outer runs + 300 tracked children (start, finish, the child output),
        # one code version per job and one environment.
        assert reports == [{"durable": 300 * 5 + 2 + 1, "spilled": 0}] * 3
        _check(home.url, home.path, expected=durable, runs=3 * 600)


def test_a_producer_keeps_working_while_nats_is_down_and_replays_later(tmp_path: Path) -> None:
    with _nats.fresh_stream("down") as stream:
        dead = f"nats://127.0.0.1:{_pg.closed_port()}"
        spill = tmp_path / "spill"
        env = {**stream.env(), "DATATRAIL_TRANSPORT": dead, "DATATRAIL_SPILL_DIR": str(spill)}
        first = _finish(_python(PRODUCER, "0", "50", env=env, cwd=tmp_path))
        assert first == {"durable": 0, "spilled": 50 * 5 + 3}
        (left,) = spill_status(spill)
        assert not left.alive
        assert left.events == first["spilled"]
        # A later producer on the live server claims the dead one's spill file and sends it.
        env["DATATRAIL_TRANSPORT"] = stream.url
        second = _finish(_python(PRODUCER, "1", "5", env=env, cwd=tmp_path))
        assert second["spilled"] == 0
        assert second["durable"] == first["spilled"] + 5 * 5 + 3
        assert spill_status(spill) == []
        home = init_home(tmp_path / ".datatrail")
        stats = ingest(
            stream.url,
            lambda: open_store(home.url, signer=home.signer()),
            stream=stream.name,
            subject=stream.subject,
            idle_exit=1.0,
        )
        assert stats.appended == second["durable"]
        _check(home.url, home.path, expected=second["durable"], runs=2 * 55)


# -- PostgreSQL ----------------------------------------------------------------------------


def test_cutting_the_store_connection_mid_pipeline_spills_then_replays_exactly(
    tmp_path: Path,
) -> None:
    url = _pg.require_postgres()
    with _pg.fresh_schema("cut") as schema:
        _pg.admin_execute(f'CREATE SCHEMA "{schema}"')
        host, port = _pg._host_port(url).rsplit(":", 1)
        proxy = _pg.TcpProxy(host, int(port))
        proxy.start()
        proxied = url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}", 1)
        proxied += f"?options=-csearch_path%3D{schema}"
        home = init_home(tmp_path / ".datatrail", url=proxied)
        datatrail.configure(home=home)
        try:

            @datatrail.track
            def step(x: int) -> int:
                return x + 1

            for i in range(20):
                with datatrail.run("before-cut", params={"i": i}):
                    step(i)
            before = datatrail.flush()
            assert before.spilled == 0
            proxy.cut()
            for i in range(30):  # the pipeline goes on while the store is unreachable
                with datatrail.run("during-cut", params={"i": i}):
                    assert step(i) == i + 1
            during = datatrail.flush()
            assert during.spilled == 30 * 5 + 1  # runs, children, and one new code version
            proxy.start()
            after = datatrail.flush()
            assert after.spilled == 0
            assert after.durable == before.durable + during.spilled
        finally:
            datatrail.capture.shutdown()
            datatrail.configure(home=None)
            proxy.cut()
        direct = f"{url}?options=-csearch_path%3D{schema}"
        _check(direct, home.path, expected=after.durable, runs=100)


def test_a_process_killed_right_after_flush_loses_nothing_flush_reported(tmp_path: Path) -> None:
    script = PRODUCER.replace(
        'print(json.dumps({"durable": result.durable, "spilled": result.spilled}), flush=True)',
        'print(json.dumps({"durable": result.durable, "spilled": result.spilled}), flush=True)\n'
        "import os, signal\n"
        "for i in range(50):\n"
        "    with datatrail.run('after-flush', params={'i': i}):\n"
        "        step(i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    home = init_home(tmp_path / ".datatrail")
    proc = _python(script, "0", "200", env={"DATATRAIL_HOME": str(home.path)}, cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    reported = json.loads(out.strip().splitlines()[0])
    store = SQLiteStore(home.path / "trail.db")
    try:
        (runs,) = store.query(
            "SELECT COUNT(*) FROM runs WHERE job_name = 'producer-0' AND status = 'completed'"
        )[0]
        assert runs == 200
        assert store.size() >= reported["durable"]
        report = verify(store, verifier=load_verifier(home.verifier_key))
        assert report.ok
    finally:
        store.close()


def test_migrate_copies_a_trail_to_postgres_with_the_same_root(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    url = _pg.require_postgres()
    home = init_home(tmp_path / ".datatrail")
    store = open_store(home.url, signer=home.signer())
    try:
        for _ in range(5):
            store.append(_runs_events(40))
        from datatrail.audit import erase

        erase(store, 3, reason="forget")
        source_root = store.root()
        size = store.size()
    finally:
        store.close()
    with _pg.fresh_schema("mig") as schema:
        target = f"{url}?options=-csearch_path%3D{schema}"
        _pg.admin_execute(f'CREATE SCHEMA "{schema}"')
        result = CliRunner().invoke(
            app,
            [
                "migrate",
                "--from",
                str(home.path),
                "--to",
                target,
                "--home",
                str(home.path),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data == {
            "entries": size,
            "root": source_root.hex(),
            "source_root": source_root.hex(),
        }
        copied = open_store(target)
        try:
            report = verify(copied, verifier=load_verifier(home.verifier_key))
            assert report.ok, report.faults[:3]
            assert copied.root() == source_root
            assert copied.event(3) is not None and copied.event(3).body is None  # still erased
        finally:
            copied.close()
        again = CliRunner().invoke(
            app, ["migrate", "--from", str(home.path), "--to", target, "--home", str(home.path)]
        )
        assert again.exit_code == 2
        assert "already holds" in again.output


def test_flush_replays_a_dead_process_spill_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    home = init_home(tmp_path / ".datatrail")
    spill = home.path / "spill"
    spill.mkdir()
    events = _runs_events(25)
    from datatrail.model import encode_event

    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    (spill / f"spill-{dead_pid}.jsonl").write_bytes(
        b"".join(encode_event(e) + b"\n" for e in events) + b'{"kind":"run_fin'  # torn tail
    )
    status = CliRunner().invoke(app, ["spill", "status", "--home", str(home.path), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["events"] == 51
    result = CliRunner().invoke(app, ["flush", "--home", str(home.path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["events_appended"] == 50
    assert spill_status(spill) == []
    store = SQLiteStore(home.path / "trail.db")
    try:
        assert store.size() == 50
        assert replay_orphans(spill, store) == 0
    finally:
        store.close()


# -- HTTP transport ----------------------------------------------------------------------------


def test_the_http_transport_sends_a_pipeline_to_a_server_exactly_once(tmp_path: Path) -> None:
    from datatrail.server import create_app
    from test_server_support import issue_tokens, live_server

    home = init_home(tmp_path / "server" / ".datatrail")
    tokens = issue_tokens(home, ("producer", "viewer"))
    store = open_store(home.url)
    try:
        before = store.size()  # the two token records
    finally:
        store.close()
    spill = tmp_path / "spill"
    with live_server(create_app(home)) as base:
        env = {
            "DATATRAIL_TRANSPORT": base,
            "DATATRAIL_TOKEN": tokens["producer"],
            "DATATRAIL_SPILL_DIR": str(spill),
        }
        sent = _finish(_python(PRODUCER, "0", "40", env=env, cwd=tmp_path))
        assert sent == {"durable": 40 * 5 + 3, "spilled": 0}
        # A viewer may not write: the batch is refused and waits in the spill file.
        env["DATATRAIL_TOKEN"] = tokens["viewer"]
        refused = _finish(_python(PRODUCER, "1", "3", env=env, cwd=tmp_path))
        assert refused == {"durable": 0, "spilled": 3 * 5 + 3}
        # With a producer token again, the next process replays the refused batch first.
        env["DATATRAIL_TOKEN"] = tokens["producer"]
        again = _finish(_python(PRODUCER, "2", "2", env=env, cwd=tmp_path))
        assert again == {"durable": refused["spilled"] + 2 * 5 + 3, "spilled": 0}
    expected = before + sent["durable"] + again["durable"]
    _check(home.url, home.path, expected=expected, runs=2 * (40 + 3 + 2))
