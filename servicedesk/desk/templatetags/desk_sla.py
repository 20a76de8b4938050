"""SLA countdowns in the workspace's templates; the views compute them (``servicedesk.desk.sla``)."""

from __future__ import annotations

from typing import Any

from django import template

from servicedesk.desk.sla import SlaBoard, TargetView
from servicedesk.tickets.models import Ticket

register = template.Library()


@register.inclusion_tag("desk/_sla_badge.html")
def sla_badge(view: TargetView | None) -> dict[str, Any]:
    """One target's countdown or outcome, with the data the refresh script reads."""
    return {"view": view}


@register.inclusion_tag("desk/_sla_badge.html")
def sla_headline(board: SlaBoard, ticket: Ticket) -> dict[str, Any]:
    """The target a ticket's row shows: the next due one, else a paused one, else the outcome."""
    return {"view": board.headline(ticket)}
