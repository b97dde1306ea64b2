"""Strictness the signed-note parser leaves out: one encoding per signature.

Base64 leaves spare bits in a final partial group; a decoder that ignores
them accepts several spellings of the same signature, so a note's text could
change while every signature still verifies. A checkpoint is evidence byte
for byte, so only the canonical spelling is accepted.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["canonical_signatures"]

_PREFIX = "\u2014 "


def canonical_signatures(note: str) -> bool:
    """Whether every signature line of ``note`` spells its base64 the one canonical way."""
    cut = note.rfind("\n\n")
    if cut < 0:
        return False
    for line in note[cut + 2 :].splitlines():
        if not line.startswith(_PREFIX):
            return False
        blob = line[len(_PREFIX) :].rpartition(" ")[2]
        try:
            if base64.b64encode(base64.b64decode(blob, validate=True)).decode() != blob:
                return False
        except (binascii.Error, ValueError):
            return False
    return True
