"""Float helpers shared by the detectors."""

from __future__ import annotations

import math
import struct

__all__ = ["f32"]

_F32 = struct.Struct("<f")


def f32(x: float) -> float:
    """Round ``x`` to float32 and widen back (what ``float(np.float32(x))`` gives).

    Compat mode stores several library columns as float32 and also *decides* on them (SPEC 1),
    so the rounding must be bit-exact; struct packing uses the same round-to-nearest-even cast.
    """
    try:
        out: float = _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)
    return out
