"""What a browser may send on ``/ws/desk/``, verified at the edge: a typed frame, or the reason it is refused.

``frame_read`` is pure (no I/O), so the consumer only acts on frames that
are whole and well-formed; every refusal names its reason, which the
consumer logs and answers with ``{"type": "error", "code": "bad_frame"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A client frame is a few dozen bytes; anything this big is a mistake or an attack.
MAX_FRAME_BYTES = 4096
# Ticket references are short ("SD-123456"); a longer one is no reference.
MAX_REFERENCE = 64
TICKET_FRAMES = frozenset({"view", "leave", "typing"})
KINDS = frozenset({"ping", "resume"}) | TICKET_FRAMES


class BadFrame(Exception):
    """A frame refused; ``reason`` is told to the client and logged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """A verified client frame: ``kind`` and, by kind, ``after`` (resume) or ``ticket`` (a reference)."""

    kind: str
    after: int = 0
    ticket: str = ""


def frame_read(text_data: str | None, bytes_data: bytes | None = None) -> Frame:
    """The frame in one WebSocket message, else BadFrame with the reason."""
    if text_data is None:
        raise BadFrame("binary frames are not accepted")
    if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode("utf-8")) > MAX_FRAME_BYTES:
        raise BadFrame(f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        content: Any = json.loads(text_data)
    except ValueError:
        raise BadFrame("not JSON") from None
    if not isinstance(content, dict):
        raise BadFrame("not a JSON object")
    kind = content.get("type")
    if kind not in KINDS:
        raise BadFrame("unknown frame type")
    if kind == "resume":
        after = content.get("after")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise BadFrame("resume needs 'after', a non-negative event id")
        return Frame(kind=kind, after=after)
    if kind in TICKET_FRAMES:
        ticket = content.get("ticket")
        if not isinstance(ticket, str) or not ticket.strip() or len(ticket) > MAX_REFERENCE:
            raise BadFrame(f"{kind} needs 'ticket', a ticket reference")
        return Frame(kind=kind, ticket=ticket.strip())
    return Frame(kind=kind)
