"""The logging filter and the structlog processor tag records with the current run and artifact."""

from __future__ import annotations

import logging

import structlog
from structlog.testing import capture_logs

import datatrail
from datatrail.integrations.logging import ATTRIBUTES, DatatrailFilter, add_datatrail_ids


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _logger(name: str) -> tuple[logging.Logger, _Collect]:
    handler = _Collect()
    handler.addFilter(DatatrailFilter())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handler


def test_filter_adds_run_job_and_latest_artifact_ids(trail) -> None:
    logger, handler = _logger("test.datatrail.filter")
    with datatrail.run("etl") as r:
        logger.info("before any data")
        r.input(b"raw bytes")
        logger.info("after the input")
        r.output(b"clean bytes")
        logger.info("after the output")
    logger.info("outside")
    t = trail()
    detail = t.run(r.run_id)
    before, after_in, after_out, outside = handler.records
    assert before.datatrail_run_id == r.run_id  # type: ignore[attr-defined]
    assert before.datatrail_job == "etl"  # type: ignore[attr-defined]
    assert before.datatrail_artifact_id is None  # type: ignore[attr-defined]
    assert after_in.datatrail_artifact_id == detail.inputs[0].artifact_id  # type: ignore[attr-defined]
    assert after_in.datatrail_artifact_role == "input"  # type: ignore[attr-defined]
    assert after_out.datatrail_artifact_id == detail.outputs[0].artifact_id  # type: ignore[attr-defined]
    assert after_out.datatrail_artifact_role == "output"  # type: ignore[attr-defined]
    assert all(getattr(outside, a) is None for a in ATTRIBUTES)


def test_filter_ids_work_in_a_format_string_and_name_the_nested_run(trail) -> None:
    logger, handler = _logger("test.datatrail.format")
    handler.setFormatter(
        logging.Formatter("%(datatrail_job)s %(datatrail_run_id)s<%(datatrail_parent_run_id)s")
    )

    @datatrail.track
    def step(x: bytes) -> bytes:
        logger.info("in step")
        return x

    with datatrail.run("outer") as outer:
        step(b"abc")
    (record,) = handler.records
    t = trail()
    (child,) = [r for r in t.runs() if r.parent_run_id == outer.run_id]
    assert handler.format(record) == f"{child.job_name} {child.run_id}<{outer.run_id}"


def test_structlog_processor_adds_ids_and_keeps_explicit_values(trail) -> None:
    structlog.configure(processors=[add_datatrail_ids, structlog.testing.LogCapture()])
    try:
        with capture_logs(processors=[add_datatrail_ids]) as logs:
            log = structlog.get_logger()
            with datatrail.run("load") as r:
                r.output(b"payload")
                log.info("wrote")
                log.info("explicit", datatrail_job="mine")
            log.info("outside")
    finally:
        structlog.reset_defaults()
    t = trail()
    (out,) = t.run(r.run_id).outputs
    wrote, explicit, outside = logs
    assert wrote["datatrail_run_id"] == r.run_id
    assert wrote["datatrail_job"] == "load"
    assert wrote["datatrail_artifact_id"] == out.artifact_id
    assert explicit["datatrail_job"] == "mine"
    assert outside["datatrail_run_id"] is None
