"""@mentions in internal notes: who a note names, and who of them may hear of it.

A note names an agent as ``@username`` or ``@"Display Name"``. A name counts
when it is one active desk user (agent, manager or admin) who may see the
note's ticket (``access.can_see_ticket``, the one rule for tickets); such a
mention is stored as a ``MessageMention`` row with the note, in the note's
transaction, and notifications tells that agent after commit. A name that
is nobody's, several people's, or someone's who may not see the ticket is
neither stored nor notified: the writer is shown those names
(``mention_names_unnotified``). Public replies are never read for mentions.
See docs/followups.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Concat, Lower

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ROLES
from servicedesk.tickets.access import can_see_ticket
from servicedesk.tickets.models import Message, MessageMention, Ticket

# ``@ann``, ``@ann.lee``, ``@"Ann Lee"``; not the middle of an address (``ann@example.com``).
MENTION_PATTERN = re.compile(r'(?<![\w@.+-])@(?:"([^"\r\n]{1,150})"|([\w][\w.+-]{0,149}))')
# Names read per note at most: a note is not a mailing list.
MENTIONS_MAX = 20


@dataclass
class MentionOutcome:
    """Who a note's names reached (``users``) and the names, as written, that reached nobody."""

    users: list[User] = field(default_factory=list)
    unnotified: list[str] = field(default_factory=list)


def mention_names(text: str) -> list[str]:
    """The names a text mentions, as written (without ``@`` and quotes), first use first, at most MENTIONS_MAX."""
    names: list[str] = []
    seen: set[str] = set()
    for match in MENTION_PATTERN.finditer(text or ""):
        quoted, bare = match.group(1), match.group(2)
        name = " ".join(quoted.split()) if quoted is not None else bare.rstrip(".-+")
        if name and name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
        if len(names) >= MENTIONS_MAX:
            break
    return names


def _staff() -> QuerySet[User]:
    return User.objects.filter(is_active=True).filter(Q(groups__name__in=ROLES) | Q(is_superuser=True)).distinct()


def mentions_resolve(*, ticket: Ticket, text: str, author: User | None = None) -> MentionOutcome:
    """Resolve the names ``text`` mentions to the active desk users who may see ``ticket``.

    A bare name is a username (any case); a quoted one a display name or a
    full name (any case), or a username. A name that matches several people
    reaches none of them (write their username). The author naming themself
    is neither a mention nor reported. Two queries plus one visibility check
    per person named; none for a text without ``@``.
    """
    outcome = MentionOutcome()
    names = mention_names(text)
    if not names:
        return outcome
    lowered = [name.lower() for name in names]
    candidates = list(
        _staff()
        .annotate(
            username_lower=Lower("username"),
            display_lower=Lower("display_name"),
            full_lower=Lower(Concat("first_name", Value(" "), "last_name")),
        )
        .filter(Q(username_lower__in=lowered) | Q(display_lower__in=lowered) | Q(full_lower__in=lowered))
        .order_by("pk")
    )
    reached: dict[int, User] = {}
    for name, low in zip(names, lowered, strict=True):
        by_username = [user for user in candidates if user.username.lower() == low]
        matches = by_username or [
            user
            for user in candidates
            if user.display_name.lower() == low or f"{user.first_name} {user.last_name}".lower() == low
        ]
        if len(matches) != 1:
            outcome.unnotified.append(name)
            continue
        user = matches[0]
        if author is not None and user.pk == author.pk:
            continue
        if user.pk in reached:
            continue
        if not can_see_ticket(user, ticket):
            outcome.unnotified.append(name)
            continue
        reached[user.pk] = user
    outcome.users = list(reached.values())
    return outcome


def mentions_record(*, message: Message, ticket: Ticket, author: User | None, at: datetime) -> MentionOutcome:
    """Store the mentions of an internal note just written, in its transaction.

    One ``MessageMention`` per agent reached (unique per message and agent,
    so a second call stores nothing new). The notices are sent after commit
    by notifications, which hears of the note through the ticket hooks.
    """
    outcome = mentions_resolve(ticket=ticket, text=message.text, author=author)
    if outcome.users:
        MessageMention.objects.bulk_create(
            [MessageMention(message=message, ticket=ticket, user=user, created_at=at) for user in outcome.users],
            ignore_conflicts=True,
        )
    return outcome


def mention_label(name: str) -> str:
    """A name as it is mentioned: ``@ann``, or ``@"Ann Lee"`` when it holds a space."""
    return f'@"{name}"' if " " in name else f"@{name}"


def mention_names_unnotified(*, ticket: Ticket, text: str, author: User | None = None) -> list[str]:
    """The names of a note's text that reached nobody (unknown, ambiguous, or not allowed to see
    ``ticket``), as written: what the page tells the note's author."""
    return mentions_resolve(ticket=ticket, text=text, author=author).unnotified
