"""A phone call's entry in a ticket's thread, read from the facts the phone channel recorded.

A message of purpose ``call`` carries the call as plain values
(``Message.facts``); ``call_entry_facts`` gives them as a page shows them,
in the reader's language. Links are kept only for http and https addresses;
everything else a telephone system or a caller sent is text. The desk
(``desk_calls``) and the help centre (``web_messages``) both read it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

OUTCOMES = {
    "answered": gettext_lazy("Answered"),
    "missed": gettext_lazy("Missed"),
    "voicemail": gettext_lazy("Voicemail"),
    "not_answered": gettext_lazy("Not answered"),
}


def seconds_text(value: Any) -> str:
    """Seconds as "42 s", "4 min 05 s" or "1 h 02 min"."""
    if not isinstance(value, int) or value < 0:
        return ""
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}
    if minutes:
        return _("%(minutes)d min %(seconds)02d s") % {"minutes": minutes, "seconds": seconds}
    return _("%(seconds)d s") % {"seconds": seconds}


def _link(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text if text.lower().startswith(("https://", "http://")) else ""


def _instant(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def call_entry_facts(message: Any) -> dict[str, Any]:
    """A call entry's ``Message.facts`` as the values a page shows (links only for http and https)."""
    facts = message.facts if isinstance(message.facts, dict) else {}
    inbound = facts.get("direction") != "out"
    number = facts.get("number") if isinstance(facts.get("number"), str) else ""
    return {
        # An agent's answer to the call (the ticket's reply), shown as one line.
        "answer": bool(facts.get("answer")),
        "inbound": inbound,
        "number": number,
        "line": facts.get("line") or "",
        "agent": facts.get("agent") or "",
        "outcome": OUTCOMES.get(facts.get("outcome") or "", ""),
        "ongoing": not facts.get("ended_at"),
        "answered_at": _instant(facts.get("answered_at")),
        "wait": seconds_text(facts.get("wait_seconds")),
        "talk": seconds_text(facts.get("talk_seconds")),
        "recording_url": _link(facts.get("recording_url")),
        "voicemail_url": _link(facts.get("voicemail_url")),
        "transcript": facts.get("transcript") if isinstance(facts.get("transcript"), str) else "",
        "logged": bool(facts.get("logged")),
    }
