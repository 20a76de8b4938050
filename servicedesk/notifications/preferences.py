"""Each agent's choice, per kind of notice, of the workspace (the bell) and email.

``notification_send`` asks ``preference_of`` for every notice it stores, so
every kind, the SLA's warnings and breaches included, follows the same
choice. Without a stored row a kind comes both ways. A kind only managers
and admins are sent (``MANAGER_KINDS``) is offered to them alone
(``kinds_for``). See docs/followups.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core.errors import ApplicationError
from servicedesk.notifications.models import NotificationKind, NotificationPreference

# The kinds an agent chooses for, in the order the page and the API list them.
KINDS: tuple[str, ...] = (
    NotificationKind.ASSIGNED,
    NotificationKind.CUSTOMER_MESSAGE,
    NotificationKind.MENTION,
    NotificationKind.TICKET_STATUS,
    NotificationKind.REMINDER,
    NotificationKind.SLA_WARNING,
    NotificationKind.SLA_BREACH,
    NotificationKind.WEBHOOK_PAUSED,
)
# Kinds sent to managers and admins only (a webhook endpoint paused after failing for a day,
# docs/webhooks.md): another agent is not offered a choice for them.
MANAGER_KINDS: frozenset[str] = frozenset({NotificationKind.WEBHOOK_PAUSED})
CHANNELS = ("in_app", "email")


def kinds_for(user: User) -> tuple[str, ...]:
    """The kinds ``user`` chooses for, in ``KINDS`` order: all of them for a manager or admin."""
    if sees_all_queues(user):
        return KINDS
    return tuple(kind for kind in KINDS if kind not in MANAGER_KINDS)


@dataclass(frozen=True)
class KindPreference:
    """One kind's choice: ``in_app`` (the bell and the list) and ``email``."""

    kind: str
    in_app: bool = True
    email: bool = True

    @property
    def label(self) -> str:
        return str(NotificationKind(self.kind).label)


def preference_of(user: User, kind: str) -> KindPreference:
    """``user``'s choice for ``kind`` (one query; both ways when never changed)."""
    row = NotificationPreference.objects.filter(user=user, kind=kind).values_list("in_app", "email").first()
    if row is None:
        return KindPreference(kind=kind)
    return KindPreference(kind=kind, in_app=row[0], email=row[1])


def preferences_of(user: User) -> list[KindPreference]:
    """The choice for each of ``user``'s kinds (``kinds_for``), in ``KINDS`` order (one query)."""
    stored = {
        kind: (in_app, email)
        for kind, in_app, email in NotificationPreference.objects.filter(user=user).values_list(
            "kind", "in_app", "email"
        )
    }
    return [
        KindPreference(kind=kind, in_app=stored[kind][0], email=stored[kind][1])
        if kind in stored
        else KindPreference(kind=kind)
        for kind in kinds_for(user)
    ]


class InvalidPreference(ApplicationError):
    pass


def preferences_check(*, user: User, changes: Iterable[Mapping[str, object]]) -> dict[str, dict[str, bool]]:
    """``user``'s changes as ``{kind: {"in_app": bool, "email": bool}}`` (either key may be left out).

    Raises InvalidPreference (field ``preferences``) for an unknown kind, a
    kind sent only to managers and admins when ``user`` is neither, an
    unknown channel, a value that is not true or false, or a kind given twice.
    """
    checked: dict[str, dict[str, bool]] = {}
    offered = kinds_for(user)
    for change in changes:
        kind = change.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            raise InvalidPreference(
                _("Unknown kind of notification: %(kind)s.") % {"kind": str(kind)[:50]}, field="preferences"
            )
        if kind not in offered:
            raise InvalidPreference(
                _("%(kind)s is sent to managers and admins only.") % {"kind": kind}, field="preferences"
            )
        if kind in checked:
            raise InvalidPreference(_("%(kind)s is given twice.") % {"kind": kind}, field="preferences")
        values: dict[str, bool] = {}
        for key, value in change.items():
            if key == "kind":
                continue
            if key not in CHANNELS:
                raise InvalidPreference(
                    _("Unknown setting: %(name)s (in_app or email).") % {"name": str(key)[:50]}, field="preferences"
                )
            if not isinstance(value, bool):
                raise InvalidPreference(
                    _("%(kind)s: %(name)s is true or false.") % {"kind": kind, "name": key}, field="preferences"
                )
            values[key] = value
        checked[kind] = values
    return checked


def notification_preferences_set(
    *, user: User, changes: Mapping[str, Mapping[str, bool]], at: datetime | None = None
) -> list[KindPreference]:
    """Store ``user``'s choices for the kinds in ``changes`` (checked with ``preferences_check``),
    all or nothing; a channel left out keeps its value. Returns every kind's choice."""
    checked = preferences_check(user=user, changes=[{"kind": kind, **values} for kind, values in changes.items()])
    at = at or timezone.now()
    current = {pref.kind: pref for pref in preferences_of(user)}
    rows = [
        NotificationPreference(
            user=user,
            kind=kind,
            in_app=values.get("in_app", current[kind].in_app),
            email=values.get("email", current[kind].email),
            updated_at=at,
        )
        for kind, values in checked.items()
    ]
    if rows:
        # One upsert on the unique (user, kind): two saves at once leave the later one's values.
        NotificationPreference.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["user", "kind"], update_fields=["in_app", "email", "updated_at"]
        )
    return preferences_of(user)
