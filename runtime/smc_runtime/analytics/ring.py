"""Float ring buffers as ``array('d')`` and their snapshot bytes.

Rings snapshot as their raw float64 bytes (little-endian on every host), all rings of one state in
one ``bytes``, instead of msgpack lists of floats: a few ``memcpy``s to dump and to load, no
per-element Python objects. Equal rings give equal bytes, so snapshots stay deterministic.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from functools import cache

_SWAP = sys.byteorder != "little"


def new_ring(size: int) -> array[float]:
    """A ring of ``size`` zeros."""
    return array("d", bytes(8 * size))


def rings_bytes(rings: Sequence[array[float]]) -> bytes:
    """The rings' values, one after the other, as little-endian float64 bytes."""
    if _SWAP:  # pragma: no cover - big-endian hosts only
        swapped = [array("d", ring) for ring in rings]
        for ring in swapped:
            ring.byteswap()
        rings = swapped
    return b"".join(rings)


def rings_from_bytes(data: bytes, count: int, size: int) -> list[array[float]]:
    """Inverse of ``rings_bytes`` for ``count`` rings of ``size`` values; raises ``ValueError``
    when ``data`` holds another number of floats."""
    if len(data) != 8 * count * size:
        raise ValueError(f"{len(data)} bytes of rings, expected {count} x {size} float64 values")
    flat = array("d", data)
    if _SWAP:  # pragma: no cover - big-endian hosts only
        flat.byteswap()
    return list(map(flat.__getitem__, _slices(count, size)))


@cache
def _slices(count: int, size: int) -> tuple[slice, ...]:
    return tuple(slice(i * size, (i + 1) * size) for i in range(count))
