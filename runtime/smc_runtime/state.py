"""The snapshot format of one state key: every component's state as bytes, in a fixed order.

Bytes are deterministic (msgpack of structs, components in the pipeline's fixed order, alert
flags sorted), so equal state gives equal bytes and the changelog compacts cleanly.
"""

from __future__ import annotations

import msgspec

SNAPSHOT_VERSION = 2  # 2: trade rings as raw float64 bytes (1 stored msgpack float lists)


class KeySnapshot(msgspec.Struct, array_like=True):
    """State of one (source partition, state key): what the pipeline needs to rebuild its slot."""

    version: int
    kind: str
    symbol: str
    interval: str
    components: list[tuple[str, bytes]]
    detectors: list[tuple[str, bytes]]
    active_alerts: list[str]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(KeySnapshot)


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can restore."""


def encode_snapshot(snapshot: KeySnapshot) -> bytes:
    return _ENCODER.encode(snapshot)


def decode_snapshot(data: bytes) -> KeySnapshot:
    """Decode a key snapshot; raises ``SnapshotError`` (restore happens at the edge)."""
    try:
        snapshot = _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"corrupt state snapshot: {exc}") from None
    if snapshot.version != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {snapshot.version} != supported {SNAPSHOT_VERSION}")
    return snapshot
