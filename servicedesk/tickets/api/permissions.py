"""Who may change what through the API.

Visibility (which tickets and customers exist for the caller at all) is decided
by ``servicedesk.tickets.access``; these checks only run on objects the caller
may already see, so a refusal here reveals nothing new.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from servicedesk.accounts.roles import is_agent
from servicedesk.tickets.access import customer_of_user


def caller_is_agent(request: Request) -> bool:
    return is_agent(request.user)


def caller_is_customer(request: Request) -> bool:
    """A signed-in customer (not a desk user) acting for their own customer record."""
    return not is_agent(request.user) and customer_of_user(request.user) is not None


class AgentsChangeTickets(BasePermission):
    """Customers read their tickets; only agents change a ticket's fields."""

    message = _("Only agents can change tickets.")

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return request.method in SAFE_METHODS or caller_is_agent(request)


class AgentOrCustomer(BasePermission):
    """Writing (opening tickets, posting messages) needs a desk role or a customer record."""

    message = _("Only agents and customers can do this.")

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return caller_is_agent(request) or caller_is_customer(request)
