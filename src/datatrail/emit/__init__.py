"""Emission: the batching background writer, with spill-to-disk and replay, and transports."""

from datatrail.emit._writer import FlushResult, SpillFile, Writer, replay_orphans, spill_status

__all__ = ["FlushResult", "SpillFile", "Writer", "replay_orphans", "spill_status"]
