"""The caller log at /desk/calls/: recent calls the agent may see, filtered, and "mark seen".

Every call comes through ``access.calls_visible_to`` (the list) or
``access.call_get_for`` (mark seen), so an agent sees here exactly the calls
the pop and its actions show them. Each row names its customer
only when the agent may see that customer (otherwise the stand-in of
``tickets.access.customer_concealed``, as the inbox shows it) and its ticket
only when the agent may open it. The filters and what they mean are in
docs/phone.md, "Caller log".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.accounts.models import User
from servicedesk.accounts.roles import AGENT, ROLES, user_role
from servicedesk.core.pagination import page_or_404
from servicedesk.tickets.access import (
    customer_concealed,
    customers_visible_to,
    queues_visible_to,
    ticket_references_visible,
)
from servicedesk.tickets.models import Customer, Ticket
from servicedesk.tickets.services.tickets import queue_default
from servicedesk.tickets.statuses import UNSOLVED_STATUSES

from .access import call_get_for, calls_visible_to
from .models import Call, CallDirection, CallOutcome, PhoneLine
from .tickets import seconds_between

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PAGE_SIZE = 50

SHOW_ALL = "all"
SHOW_MISSED = "missed"
SHOW_CALLBACKS = "callbacks"
SHOW_UNSEEN = "unseen"
SHOW_CHOICES = [
    (SHOW_ALL, gettext_lazy("All calls")),
    (SHOW_MISSED, gettext_lazy("Missed")),
    (SHOW_CALLBACKS, gettext_lazy("Callbacks to make")),
    (SHOW_UNSEEN, gettext_lazy("Missed, not seen yet")),
]
# An inbound call that ended without an agent: the caller hung up or left a voicemail.
MISSED_OUTCOMES = (CallOutcome.MISSED, CallOutcome.VOICEMAIL)


def missed_calls() -> Q:
    return Q(direction=CallDirection.INBOUND, outcome__in=MISSED_OUTCOMES)


def callbacks_open() -> Q:
    """Callback calls whose ticket is still to be worked: unsolved, neither merged away nor deleted."""
    return Q(
        callback=True,
        ticket__status__in=UNSOLVED_STATUSES,
        ticket__merged_into__isnull=True,
        ticket__is_deleted=False,
    )


def lines_for(user: Any) -> QuerySet[PhoneLine]:
    """The lines offered in the filter: those of the queues ``user`` works, and the lines
    without a queue (whose calls go to the default queue) to whoever works that one, as
    ``access.calls_visible_to`` counts a call's line."""
    queues = queues_visible_to(user)
    rule = Q(queue__in=queues.values("pk"))
    if queues.filter(pk=queue_default().pk).exists():
        rule |= Q(queue__isnull=True)
    return PhoneLine.objects.filter(rule).order_by("name", "pk")


def call_agents() -> QuerySet[User]:
    """Everyone who works in the desk and can take calls (the workspace's list of agents)."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name__in=ROLES) | Q(is_superuser=True))
        .distinct()
        .order_by("display_name", "username", "pk")
    )


class CallFilterForm(forms.Form):
    """The caller log's query string. Values are checked against the choices offered, so a
    value from an edited address is a form error, never a query."""

    show = forms.ChoiceField(label=gettext_lazy("Show"), choices=SHOW_CHOICES, required=False)
    direction = forms.ChoiceField(label=gettext_lazy("Direction"), required=False)
    line = forms.ChoiceField(label=gettext_lazy("Line"), required=False)
    agent = forms.TypedChoiceField(label=gettext_lazy("Agent"), required=False, coerce=int, empty_value=None)

    def __init__(self, data: Any, *, lines: list[PhoneLine], agents: list[User]) -> None:
        super().__init__(data)
        self.choices_set("direction", [("", _("Both directions")), *CallDirection.choices])
        self.choices_set("line", [("", _("All lines")), *((line.key, line.name) for line in lines)])
        self.choices_set("agent", [("", _("Anyone")), *((str(user.pk), str(user)) for user in agents)])

    def choices_set(self, name: str, choices: list[tuple[str, StrOrPromise]]) -> None:
        cast(forms.ChoiceField, self.fields[name]).choices = choices

    def apply(self, calls: QuerySet[Call]) -> QuerySet[Call]:
        """``calls`` narrowed by the valid filters (call ``is_valid`` first)."""
        data = self.cleaned_data
        show = data["show"] or SHOW_ALL
        if show == SHOW_MISSED:
            calls = calls.filter(missed_calls())
        elif show == SHOW_UNSEEN:
            calls = calls.filter(missed_calls(), seen_at__isnull=True)
        elif show == SHOW_CALLBACKS:
            calls = calls.filter(callbacks_open())
        if data["direction"]:
            calls = calls.filter(direction=data["direction"])
        if data["line"]:
            calls = calls.filter(line__key=data["line"])
        if data["agent"] is not None:
            calls = calls.filter(agent_id=data["agent"])
        return calls


@dataclass(frozen=True)
class CallRow:
    """One call as the log shows it to one agent."""

    call: Call
    # The caller, or the stand-in of one the agent may not see (``concealed``); None when withheld.
    customer: Customer | None
    # The call's ticket when the agent may open it.
    ticket: Ticket | None
    wait_seconds: int | None
    talk_seconds: int | None
    missed: bool

    @property
    def can_mark_seen(self) -> bool:
        return self.missed and self.call.seen_at is None


def call_rows(user: Any, calls: list[Call]) -> list[CallRow]:
    """The rows of one page: at most two queries whatever the number of calls (the agent's
    customers, the tickets they may open), none for a page without either."""
    customer_ids = {call.customer_id for call in calls if call.customer_id is not None}
    shown_customers = customer_ids
    if customer_ids and user_role(user) == AGENT:
        shown_customers = set(customers_visible_to(user).filter(pk__in=customer_ids).values_list("pk", flat=True))
    references = {call.ticket.reference for call in calls if call.ticket is not None and call.ticket.reference}
    shown_tickets = ticket_references_visible(user, references) if references else set()
    rows = []
    for call in calls:
        customer = call.customer
        if customer is not None and customer.pk not in shown_customers:
            customer = customer_concealed(customer)
        ticket = call.ticket if call.ticket is not None and call.ticket.reference in shown_tickets else None
        answered = call.answered_at
        rows.append(
            CallRow(
                call=call,
                customer=customer,
                ticket=ticket,
                wait_seconds=seconds_between(call.rang_at, answered or call.ended_at),
                talk_seconds=seconds_between(answered, call.ended_at),
                missed=call.direction == CallDirection.INBOUND and call.outcome in MISSED_OUTCOMES,
            )
        )
    return rows


def call_seen_mark(*, call: Call, user: User, at: datetime) -> bool:
    """Record that ``user`` has seen ``call`` at ``at``; True when this marked it.

    Idempotent: only the first mark is kept (one claiming ``UPDATE ... WHERE
    seen_at IS NULL``), so a second click or a colleague's simultaneous one
    leaves the first who and when.
    """
    marked = Call.objects.filter(pk=call.pk, seen_at__isnull=True).update(seen_at=at, seen_by=user)
    return marked == 1


@require_GET
@agent_required
def calls(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = CallFilterForm(request.GET, lines=list(lines_for(user)), agents=list(call_agents()))
    if not form.is_valid():
        return render(request, "phone/calls.html", {"form": form, "page": None, "rows": []}, status=400)
    visible = form.apply(calls_visible_to(user))
    listed = visible.select_related("line", "agent", "customer", "ticket", "seen_by").order_by("-rang_at", "-pk")
    page = page_or_404(listed, PAGE_SIZE, request.GET.get("page"))
    rows = call_rows(user, list(page.object_list))
    return render(
        request,
        "phone/calls.html",
        {"form": form, "page": page, "rows": rows, "next": request.get_full_path()},
    )


@require_POST
@agent_required
def seen(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    call = call_get_for(user, pk)
    if call_seen_mark(call=call, user=user, at=timezone.now()):
        messages.success(request, _("The call is marked as seen."))
    else:
        messages.info(request, _("The call had already been seen."))
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(reverse("calls:list"))
