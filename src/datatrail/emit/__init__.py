"""Emission: the batching background writer, with spill-to-disk and replay."""

from datatrail.emit._writer import FlushResult, Writer

__all__ = ["FlushResult", "Writer"]
