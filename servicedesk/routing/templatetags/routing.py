"""The availability switch shown in the workspace header to agents."""

from __future__ import annotations

from typing import Any

from django import template

from servicedesk.accounts.roles import is_agent
from servicedesk.routing.models import AgentProfile, Availability

register = template.Library()


@register.inclusion_tag("routing/_availability.html", takes_context=True)
def availability_control(context: template.Context) -> dict[str, Any]:
    """One query: the signed-in agent's availability (offline without a profile)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not is_agent(user):
        return {"show": False}
    availability = (
        AgentProfile.objects.filter(user_id=user.pk).values_list("availability", flat=True).first()
        or Availability.OFFLINE
    )
    return {
        "show": True,
        "availability": availability,
        "choices": Availability.choices,
        "next": request.get_full_path() if request is not None else "",
        "csrf_token": context.get("csrf_token"),
    }
