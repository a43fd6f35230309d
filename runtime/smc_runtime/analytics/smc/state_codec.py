"""Snapshot codec shared by the SMC engines: a versioned state struct as deterministic msgpack.

The version check lives here once so every engine refuses a snapshot from another layout the same way
(a ``ValueError`` the restore path turns into a fresh engine plus a logged reason).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

import msgspec


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


S = TypeVar("S", bound=Versioned)


class StateCodec(Generic[S]):
    """Encode and decode one engine's state struct; ``what`` names the engine in errors."""

    def __init__(self, state_type: type[S], version: int, what: str) -> None:
        self.version, self._what = version, what
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[S] = msgspec.msgpack.Decoder(state_type)

    def encode(self, state: S) -> bytes:
        return self._encoder.encode(state)

    def decode(self, data: bytes) -> S:
        state = self._decoder.decode(data)
        if state.version != self.version:
            raise ValueError(f"unsupported {self._what} snapshot version {state.version}")
        return state
