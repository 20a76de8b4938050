"""The flood limit of one ``/ws/desk/`` connection: a token bucket, and a tolerance for refusals.

Each frame a client sends takes a token; tokens come back at ``RATE`` per
second up to ``BURST``. A frame that finds the bucket empty is refused (the
client is told, ``rate_limited``). A client that keeps sending regardless
runs out of tolerance: every refusal takes one of ``TOLERANCE`` strikes,
which come back at one per ``FORGIVE_SECONDS``, and the connection is closed
when none is left. A burst after a quiet minute is served; a client stuck in
a loop is cut off within seconds. In memory, per connection: nothing shared,
nothing stored.
"""

from __future__ import annotations

import time

# The workspace sends a ping every 30 s, a view every 20 s and a typing frame
# every 3 s at most: ten a second is far beyond any honest page.
RATE = 10.0
BURST = 30
TOLERANCE = 20
FORGIVE_SECONDS = 1.0


def clock() -> float:
    """Seconds on a monotonic clock; the one clock of the flood limit (tests replace it)."""
    return time.monotonic()


class Bucket:
    """``capacity`` tokens, refilled at ``rate`` per second."""

    def __init__(self, *, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.at = clock()

    def take(self) -> bool:
        """Take a token; False (and nothing taken) when the bucket is empty."""
        now = clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FloodLimit:
    """The limit of one connection: ``allow()`` for each frame, ``exhausted`` once it must be closed."""

    def __init__(self) -> None:
        self.frames = Bucket(capacity=BURST, rate=RATE)
        self.strikes = Bucket(capacity=TOLERANCE, rate=1 / FORGIVE_SECONDS)
        self.exhausted = False

    def allow(self) -> bool:
        """Whether to take this frame; a refusal counts against the tolerance."""
        if self.frames.take():
            return True
        if not self.strikes.take():
            self.exhausted = True
        return False
