"""The load generator (``scheduler loadgen``): the instrument for the performance goals.

Many WebSocket sessions from a few worker processes drive a scheduler (or any server
speaking docs/protocol.md, or a WebTorrent tracker with the ``tracker`` mix) and the
run reports the reply rate, p50/p99 latency, the server's CPU and RSS per session,
and the generator's own CPU. See docs/benchmarks.md.

``LoadOptions`` and ``run_load`` are imported on first use, so that building the
``scheduler`` command's parser does not import trio-websocket.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._cli import add_loadgen_parser as add_loadgen_parser
from ._cli import cmd_loadgen as cmd_loadgen
from ._histogram import LatencyHistogram as LatencyHistogram
from ._mixes import MIXES as MIXES
from ._mixes import MixSpec as MixSpec
from ._mixes import SessionScript as SessionScript

if TYPE_CHECKING:
    from ._runner import LoadOptions as LoadOptions
    from ._runner import run_load as run_load

_LAZY = {"LoadOptions": "._runner", "run_load": "._runner"}

__all__ = [
    "MIXES",
    "LatencyHistogram",
    "LoadOptions",
    "MixSpec",
    "SessionScript",
    "add_loadgen_parser",
    "cmd_loadgen",
    "run_load",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
