"""Streaming Smart Money Concepts detectors (see README.md beside this file and the shared SPEC).

``SmcEngine(params).on_bar(bar)`` per closed bar, ``finalize()`` at end of stream; every call
returns ``SmcEvent``s. Compat mode reproduces ``smartmoneyconcepts`` 0.0.27; default mode is causal.
"""

from __future__ import annotations

from .bars import Bar, validate_bar
from .engine import InvalidBarError, SmcEngine
from .events import SmcEvent, conformance_dict
from .params import SmcParams

__all__ = ["Bar", "InvalidBarError", "SmcEngine", "SmcEvent", "SmcParams", "conformance_dict", "validate_bar"]
