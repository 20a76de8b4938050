"""What people read for the keys of the report breakdowns (the JSON keeps codes, docs/metrics.md#report-json).

A channel code becomes its translated name, a queue slug the queue's name,
an agent's email the agent's name (the email kept as the secondary text), a
tier code its label and a priority code its translated name. One query per
breakdown that needs the database, whatever the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _

from servicedesk.tickets.models import Channel, Queue
from servicedesk.tickets.statuses import Priority
from servicedesk.tickets.tiers import tier_label


@dataclass(frozen=True)
class KeyLabel:
    """A breakdown key as shown: ``text`` in the cell, ``detail`` (the code or email) as its tooltip."""

    key: str
    text: str
    detail: str = ""


def _choices_label(choices: Any, key: str) -> str:
    return str(dict(choices).get(key, key))


def breakdown_labels(name: str, keys: list[str]) -> dict[str, KeyLabel]:
    """Labels for the keys of breakdown ``name`` (``by_channel``, ``by_queue``, ``by_agent``, ``by_tier``...)."""
    if name == "by_channel":
        return {key: KeyLabel(key, _choices_label(Channel.choices, key), key) for key in keys}
    if name == "by_priority":
        return {key: KeyLabel(key, _choices_label(Priority.choices, key), key) for key in keys}
    if name == "by_tier":
        return {key: KeyLabel(key, tier_label(key) if key else _("No organization"), key) for key in keys}
    if name == "by_queue":
        queue_names = dict(Queue.objects.filter(slug__in=keys).values_list("slug", "name"))
        return {key: KeyLabel(key, queue_names.get(key) or key, key) for key in keys}
    if name == "by_agent":
        users = get_user_model().objects.filter(email__in=[key for key in keys if key]).order_by("pk")
        names: dict[str, str] = {}
        for user in users:
            names.setdefault(user.email, str(user))
        return {
            key: KeyLabel(key, names.get(key) or key, key) if key else KeyLabel(key, _("Unassigned")) for key in keys
        }
    return {key: KeyLabel(key, key) for key in keys}
