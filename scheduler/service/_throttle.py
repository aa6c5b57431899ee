"""At most one log line per client address per interval, counting what it holds back.

A flood of refused handshakes must not become a flood of log lines: each would
cost a formatted line and a write, and the lines that matter would scroll away.
:class:`LogThrottle` takes ``now`` (no clock of its own) and answers, for one
event from one address, which lines to write: none while the address already
had its line within ``interval``; otherwise one, carrying how many events of
that address it held back since its previous line.

Its table of addresses is bounded (``max_addresses``). A new address finds room
by dropping addresses whose interval ran out (their held-back counts are written
then, as lines of their own); when every entry is still within its interval, the
new address shares one entry with every other such address (:data:`OTHERS`), so
an attacker with many addresses gets at most ``max_addresses + 1`` lines per
interval and no more memory.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Final, final

import attrs

from ._logging import fields

#: The entry that stands for every address the full table had no room for.
OTHERS: Final = "(other addresses)"


@final
@attrs.frozen
class Line:
    """One line to write: the address, and the events of it held back before this one.

    ``current`` is False for the closing line of an address dropped from the table
    (its held-back count; no new event of it).
    """

    address: str
    suppressed: int
    current: bool = True


@final
@attrs.define
class _Entry:
    since: float
    suppressed: int = 0


@final
class LogThrottle:
    """One line per address per ``interval`` seconds, at most ``max_addresses`` tracked."""

    def __init__(self, interval: float, max_addresses: int = 1024) -> None:
        if not interval > 0 or max_addresses < 1:
            raise ValueError("interval must be positive and max_addresses at least 1")
        self.interval = interval
        self.max_addresses = max_addresses
        #: Ordered by the time of each address's last line: the oldest first.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def event(self, address: str, now: float) -> list[Line]:
        """Note one event of ``address`` at ``now``; the lines to write (often none)."""
        entries = self._entries
        entry = entries.get(address)
        if entry is None:
            lines = self._make_room(now)
            if len(entries) >= self.max_addresses:
                address = OTHERS
                entry = entries.get(OTHERS)
            if entry is None:
                entries[address] = _Entry(now)
                lines.append(Line(address, 0))
                return lines
        else:
            lines = []
        if now - entry.since < self.interval:
            entry.suppressed += 1
            return lines
        lines.append(Line(address, entry.suppressed))
        entry.since, entry.suppressed = now, 0
        entries.move_to_end(address)
        return lines

    def _make_room(self, now: float) -> list[Line]:
        """Drop the addresses whose interval ran out; their closing lines."""
        entries, lines = self._entries, []
        while entries:
            address, oldest = next(iter(entries.items()))
            if now - oldest.since < self.interval:
                break
            del entries[address]
            if oldest.suppressed:
                lines.append(Line(address, oldest.suppressed, current=False))
        return lines


#: One line per address per this many seconds for refused credentials.
AUTH_LOG_INTERVAL: Final = 10.0
#: Addresses whose refusals are tracked at once (about 100 bytes each).
AUTH_LOG_ADDRESSES: Final = 1024


def log_throttled(
    logger: logging.Logger,
    throttle: LogThrottle,
    message: str,
    address: str,
    now: float,
    **values: object,
) -> None:
    """Log ``message`` for an event of ``address`` unless ``throttle`` holds it back.

    Each line names the address and says how many events of it were held back
    before it (``suppressed``); an address dropped from the table gets a closing
    line with its held-back count.
    """
    for line in throttle.event(address, now):
        if line.current:
            logger.info(
                message, extra=fields(address=line.address, suppressed=line.suppressed, **values)
            )
        else:
            logger.info(
                f"{message}: held back",
                extra=fields(address=line.address, suppressed=line.suppressed),
            )
