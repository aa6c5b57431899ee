"""The load generator (``scheduler loadgen``): the instrument for the performance goals.

Many WebSocket sessions from a few worker processes drive a scheduler (or any server
speaking docs/protocol.md, or a WebTorrent tracker with the ``tracker`` mix) and the
run reports the reply rate, p50/p99 latency, the server's CPU and RSS per session,
and the generator's own CPU. See docs/benchmarks.md.
"""

from ._cli import add_loadgen_parser as add_loadgen_parser
from ._cli import cmd_loadgen as cmd_loadgen
from ._histogram import LatencyHistogram as LatencyHistogram
from ._mixes import MIXES as MIXES
from ._mixes import MixSpec as MixSpec
from ._mixes import SessionScript as SessionScript
from ._runner import LoadOptions as LoadOptions
from ._runner import run_load as run_load

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
