"""What a load session sends, and which reply it expects: the message mixes (no I/O).

A session first announces its host (unique hostname per session, as docs/protocol.md
requires) and runs its mix's set-up exchanges; then every request of the window is
one frame built by :meth:`SessionScript.request`. :meth:`SessionScript.judge` reads
a frame from the server and says whether it is the reply to the request in flight.

Mixes:

* ``announce``: ``announce_host`` again and again (``host_accepted``);
* ``register``: ``register_peer`` with a fresh peer each time (``schedule``);
* ``pieces``: one peer registered and started at set-up, then ``pieces_finished``
  reports (``ack``);
* ``batch``: the protocol's ``batch`` frame, ``--batch-size`` items of the
  ``--batch-items`` mix per frame, answered by one ``batch`` frame whose ``replies``
  hold one reply per item. A server without batch support answers ``error``: the
  verdict ``unsupported`` says so, and the session stops sending batches;
* ``tracker``: the WebTorrent tracker's JSON announce (``{"action": "announce", ...}``),
  to drive bittorrent-tracker with the same load.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, final

import orjson

MIXES: Final = ("announce", "register", "pieces", "batch", "tracker")
BATCH_ITEMS: Final = ("announce", "register", "pieces")
#: The hosts' announce interval: long, so nothing expires during a run.
ANNOUNCE_INTERVAL: Final = 3600
PIECES_PER_TASK: Final = 1024
_TRACKER_SWARMS: Final = 100


class Verdict(enum.Enum):
    OK = "ok"  # the expected reply
    ERROR = "error"  # an ``error`` reply to the request (its code is counted)
    UNSUPPORTED = "unsupported"  # an ``error`` reply to a batch frame: no batch support
    UNEXPECTED = "unexpected"  # a reply to the request, of the wrong shape
    OTHER = "other"  # not the reply to this request (a push, an offer): keep reading


@dataclass(frozen=True)
class MixSpec:
    mix: str = "announce"
    batch_size: int = 10
    batch_items: str = "pieces"
    tasks: int = 100
    prefix: str = "load"

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        if self.batch_items not in BATCH_ITEMS:
            raise ValueError(f"batch items must be one of {', '.join(BATCH_ITEMS)}")
        if not 1 <= self.batch_size <= 1000:
            raise ValueError(f"batch size must be 1-1000, got {self.batch_size}")
        if self.tasks < 1:
            raise ValueError(f"tasks must be >= 1, got {self.tasks}")

    @property
    def updates_per_request(self) -> int:
        return self.batch_size if self.mix == "batch" else 1

    @property
    def scheduler_protocol(self) -> bool:
        """Whether the mix speaks docs/protocol.md (else the WebTorrent tracker's JSON)."""
        return self.mix != "tracker"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    detail: str = ""  # the error code, or what was unexpected


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


@final
class SessionScript:
    """The frames of one session (``index`` within its worker), in order."""

    def __init__(self, spec: MixSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.hostname = f"{spec.prefix}-{index:06d}"
        a, b = divmod(index, 65_536)
        self.ip = f"10.{a % 256}.{b // 256}.{b % 256}"
        self.peer_id = f"{self.hostname}-peer"
        self.task_url = f"https://loadgen.invalid/{spec.prefix}/{index}"
        self._sent = 0  # items sent so far (peers registered, pieces reported)
        self._setup: list[str] = []
        self.announced_tracker = False

    # --- set-up ---------------------------------------------------------------------------

    def _items(self) -> str:
        return self.spec.batch_items if self.spec.mix == "batch" else self.spec.mix

    def _announce_message(self, request_id: int) -> dict[str, Any]:
        host = {"hostname": self.hostname, "ip": self.ip, "port": 8002, "download_port": 8001}
        return {
            "type": "announce_host",
            "id": request_id,
            "host": host,
            "interval": ANNOUNCE_INTERVAL,
        }

    def announce(self, request_id: int) -> str:
        return _dumps(self._announce_message(request_id))

    def setup_frames(self) -> list[tuple[str, str]]:
        """(frame, expected reply type) of the set-up: announce, then the mix's own."""
        if not self.spec.scheduler_protocol:
            return []
        steps = [(self.announce(-1), "host_accepted")]
        if self._items() == "pieces":
            register = {
                "type": "register_peer",
                "id": -2,
                "peer_id": self.peer_id,
                "task": {"url": self.task_url, "total_piece_count": PIECES_PER_TASK},
            }
            steps.append((_dumps(register), "schedule"))
        return steps

    def after_schedule(self, reply: dict[str, Any]) -> tuple[str, str] | None:
        """The step that follows the set-up ``schedule``: start the download as told."""
        action = reply.get("action")
        step = {"parents": "download_started", "back_to_source": "back_to_source"}.get(str(action))
        if step is None:
            return None
        return _dumps({"type": step, "id": -3, "peer_id": self.peer_id}), "ack"

    # --- requests -------------------------------------------------------------------------

    def _item(self, request_id: int) -> dict[str, Any]:
        items = self._items()
        self._sent += 1
        if items == "announce":
            return self._announce_message(request_id)
        if items == "register":
            return {
                "type": "register_peer",
                "id": request_id,
                "peer_id": f"{self.hostname}-r{self._sent}",
                "task": {"url": f"https://loadgen.invalid/task-{self._sent % self.spec.tasks}"},
            }
        return {
            "type": "pieces_finished",
            "id": request_id,
            "peer_id": self.peer_id,
            "pieces": [self._sent % PIECES_PER_TASK],
        }

    def request(self, request_id: int) -> str:
        """The frame of request ``request_id`` (ids are positive; set-up uses negatives)."""
        spec = self.spec
        if spec.mix == "tracker":
            return self._tracker_announce()
        if spec.mix == "batch":
            items = [self._item(request_id * 10_000 + k) for k in range(spec.batch_size)]
            return _dumps({"type": "batch", "id": request_id, "messages": items})
        return _dumps(self._item(request_id))

    def _tracker_announce(self) -> str:
        message: dict[str, Any] = {
            "action": "announce",
            "info_hash": f"loadgen-swarm-{self.index % _TRACKER_SWARMS:06d}",
            "peer_id": f"{self.spec.prefix}-{self.index}".rjust(20, "0")[-20:],
            "uploaded": 0,
            "downloaded": 0,
            "left": 0,
            "numwant": 0,
            "offers": [],
        }
        if not self.announced_tracker:
            message["event"] = "started"
            self.announced_tracker = True
        return _dumps(message)

    # --- replies --------------------------------------------------------------------------

    def expected(self) -> str:
        return {
            "announce": "host_accepted",
            "register": "schedule",
            "pieces": "ack",
            "batch": "batch",
            "tracker": "announce",
        }[self.spec.mix]

    def judge(self, frame: str | bytes, request_id: int) -> Judgement:
        """Whether ``frame`` answers request ``request_id``, and how."""
        try:
            reply = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return Judgement(Verdict.UNEXPECTED, "invalid JSON")
        if not isinstance(reply, dict):
            return Judgement(Verdict.UNEXPECTED, "not a JSON object")
        if not self.spec.scheduler_protocol:
            if reply.get("action") != "announce" or "offer" in reply or "answer" in reply:
                return Judgement(Verdict.OTHER)
            if "failure reason" in reply:
                return Judgement(Verdict.ERROR, str(reply["failure reason"])[:60])
            return Judgement(Verdict.OK)
        if reply.get("id") != request_id:
            if reply.get("type") == "error" and "id" not in reply:
                return Judgement(Verdict.ERROR, str(reply.get("code")))
            return Judgement(Verdict.OTHER)  # pushes: schedule without id, fetch_task
        kind = reply.get("type")
        if kind == "error":
            code = str(reply.get("code"))
            if self.spec.mix == "batch":
                message = str(reply.get("message", ""))
                return Judgement(Verdict.UNSUPPORTED, f"{code}: {message}")
            return Judgement(Verdict.ERROR, code)
        if kind != self.expected():
            return Judgement(Verdict.UNEXPECTED, f"{kind} instead of {self.expected()}")
        if self.spec.mix == "batch":
            replies = reply.get("replies")
            if not isinstance(replies, list) or len(replies) != self.spec.batch_size:
                return Judgement(Verdict.UNEXPECTED, "batch replies do not match the items")
            failed = [
                r.get("code") for r in replies if isinstance(r, dict) and r.get("type") == "error"
            ]
            if failed:
                return Judgement(Verdict.ERROR, f"batch item: {failed[0]}")
        return Judgement(Verdict.OK)
