"""The workspace's side of calls, under /desk/calls/: the screen pop, its actions, and "Log a call".

The pop is HTML the desk renders for the signed-in agent (``pop.js`` puts it
in every desk page): a push over ``/ws/desk/`` only says a call changed
(``pushes.py``), and the page reads ``<id>/pop/`` again, which shows what
that agent should see now:

- the call rings for them (their phone, or the online agents of the line's
  queue when the telephone system names nobody): the caller, their
  organisation and tier, open tickets and last contacts, with "Open customer",
  "Attach to this ticket" and "New ticket";
- they answered it and it goes on: the same, with the call's ticket;
- it ended, they answered it and have not wrapped up: the wrap-up form (note,
  ticket status), whose saving ends the after-contact work;
- otherwise nothing (another agent answered, or the caller hung up).

Every view takes the call through ``access.call_get_for``: a call the agent
may not see is the same 404 as no call. Everything a caller or a telephone
system wrote is text in the templates, never HTML.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.ratelimit import rate_count
from servicedesk.tickets.access import customers_visible_to, ticket_get_for, tickets_visible_to
from servicedesk.tickets.models import Customer, Ticket
from servicedesk.tickets.services.customers import InvalidIdentity
from servicedesk.tickets.statuses import UNSOLVED_STATUSES, Status
from servicedesk.tickets.tiers import tier_label

from .access import call_get_for, calls_visible_to, rings_for
from .forms import DIAL_OUTCOMES, CallLogForm, DialEndForm, WrapUpForm
from .models import Call, CallState
from .pushes import call_push_after_commit, queue_agent_online
from .services import phone_number
from .tickets import (
    call_attach,
    call_caller_choose,
    call_dial,
    call_dial_end,
    call_log,
    call_ticket_new,
    call_wrap_up,
    callers_sharing,
)

# How long a ringing call without an end still pops (a lost hang-up must not pop for ever).
RINGING_SHOWN = timedelta(minutes=10)
# How long an ended call waits for its wrap-up in the pop.
WRAP_UP_SHOWN = timedelta(hours=12)


# Calls an agent may dial from the desk a minute (a tel: link each).
DIALS_PER_MINUTE = 30
# A second click on the same number within this time is the same call.
DIAL_AGAIN_WITHIN = timedelta(seconds=10)


def _pop_kind(call: Call, user_id: int, now: datetime) -> str:
    """What the agent's pop shows for the call now: dialled, ringing, active, wrap_up or ''."""
    if call.line_id is None and call.state == CallState.RINGING:
        # Dialled from the desk (a tel: link): the dialling agent's until they end it.
        return "dialled" if call.agent_id == user_id and now - call.rang_at <= WRAP_UP_SHOWN else ""
    if call.state == CallState.RINGING:
        if now - call.rang_at > RINGING_SHOWN:
            return ""
        if user_id in (call.ringing or ()):
            return "ringing"
        if not call.ringing and call.line is not None and queue_agent_online(call.line.queue_id, user_id):
            return "ringing"
        return ""
    if call.agent_id != user_id:
        return ""
    if call.state == CallState.ANSWERED:
        return "active"
    if call.wrapped_up_at is None and call.ended_at is not None and now - call.ended_at <= WRAP_UP_SHOWN:
        return "wrap_up"
    return ""


def _pop_context(request: HttpRequest, call: Call, kind: str) -> dict[str, object]:
    user = request.user
    customer = call.customer
    open_tickets: list[Ticket] = []
    recent: list[Ticket] = []
    shown = customer is not None and customers_visible_to(user).filter(pk=customer.pk).exists()
    if customer is not None:
        mine = tickets_visible_to(user).filter(customer=customer, merged_into__isnull=True).select_related("queue")
        open_tickets = list(mine.filter(status__in=UNSOLVED_STATUSES).order_by("-updated_at")[:5])
        recent = list(mine.order_by("-created_at")[:5])
    return {
        "call": call,
        "kind": kind,
        "customer": customer,
        # A shared number: the other customers who have it, for the agent to say who calls.
        "sharing": callers_sharing(call) if kind != "wrap_up" else [],
        "customer_shown": shown,
        "tier": tier_label(customer.tier) if customer is not None else "",
        "open_tickets": open_tickets,
        "recent": recent,
        "statuses": Status.choices,
        "wrap_up_form": WrapUpForm(),
        "dial_outcomes": DIAL_OUTCOMES,
        "next": request.GET.get("next", ""),
    }


@require_GET
@agent_required
def pop(request: HttpRequest, pk: int) -> HttpResponse:
    """One call's pop for the signed-in agent; empty (204) when there is nothing to show them."""
    agent = signed_in_user(request)
    call = call_get_for(agent, pk)
    kind = _pop_kind(call, agent.pk, timezone.now())
    if not kind:
        return HttpResponse(status=204)
    return render(request, "phone/_pop.html", _pop_context(request, call, kind))


def _current_calls(user_id: int, visible: QuerySet[Call], now: datetime) -> list[Call]:
    candidates = visible.filter(
        # Ringing for this agent, or for a whole queue (``_pop_kind`` says whether theirs).
        (rings_for(user_id) | Q(ringing=[])) & Q(state=CallState.RINGING, rang_at__gte=now - RINGING_SHOWN)
        | Q(agent_id=user_id, state=CallState.ANSWERED)
        | Q(agent_id=user_id, line__isnull=True, state=CallState.RINGING, rang_at__gte=now - WRAP_UP_SHOWN)
        | Q(agent_id=user_id, state=CallState.ENDED, wrapped_up_at__isnull=True, ended_at__gte=now - WRAP_UP_SHOWN)
    )
    return list(candidates.select_related("line", "customer__organization", "ticket").order_by("-rang_at")[:10])


@require_GET
@agent_required
def pops(request: HttpRequest) -> HttpResponse:
    """Every pop the signed-in agent should see now (a page that opens, or a socket that reconnects)."""
    agent = signed_in_user(request)
    now = timezone.now()
    shown = []
    for call in _current_calls(agent.pk, calls_visible_to(agent), now):
        kind = _pop_kind(call, agent.pk, now)
        if kind:
            shown.append(_pop_context(request, call, kind))
    return render(request, "phone/_pops.html", {"pops": shown})


def _reference(call: Call) -> str:
    return str(Ticket.objects.values_list("reference", flat=True).get(pk=call.ticket_id or 0))


def _refused(request: HttpRequest, form: WrapUpForm) -> HttpResponse:
    """A pop's form with bad values: each error as a message, back where the agent was."""
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, str(error))
    return _back(request, reverse("desk:inbox"))


def _back(request: HttpRequest, default: str) -> HttpResponse:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(default)


@require_POST
@agent_required
def attach(request: HttpRequest, pk: int) -> HttpResponse:
    """Put the call on one of the caller's tickets the agent chose in the pop, and open that ticket."""
    agent = signed_in_user(request)
    call = call_get_for(agent, pk)
    try:
        ticket = ticket_get_for(agent, (request.POST.get("ticket") or "").strip())
    except NotFound:
        messages.error(request, _("Choose one of the tickets shown."))
        return _back(request, reverse("desk:inbox"))
    with transaction.atomic():
        call_attach(call=call, ticket=ticket, agent=agent, at=timezone.now())
    messages.success(request, _("The call is on %(reference)s.") % {"reference": ticket.reference})
    return redirect("desk:ticket", reference=ticket.reference)


@require_POST
@agent_required
def caller(request: HttpRequest, pk: int) -> HttpResponse:
    """The agent says which of the customers sharing the number is calling."""
    agent = signed_in_user(request)
    call = call_get_for(agent, pk)
    try:
        customer_pk = int(request.POST.get("customer") or "")
    except ValueError:
        customer_pk = 0
    chosen = next((c for c in callers_sharing(call) if c.pk == customer_pk), None)
    if chosen is None:
        messages.error(request, _("Choose one of the customers shown."))
        return _back(request, reverse("desk:inbox"))
    with transaction.atomic():
        call_caller_choose(call=call, customer=chosen, agent=agent, at=timezone.now())
    messages.success(request, _("The caller is %(name)s.") % {"name": chosen.name or chosen.pk})
    return _back(request, reverse("desk:inbox"))


@require_POST
@agent_required
def ticket_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Open a ticket for the call now, unless it is on one (then open that one)."""
    agent = signed_in_user(request)
    call = call_get_for(agent, pk)
    if call.session_id is None:
        messages.error(request, _("The telephone system has not said who is calling yet. Try again in a moment."))
        return _back(request, reverse("desk:inbox"))
    with transaction.atomic():
        call = call_ticket_new(call=call, agent=agent, at=timezone.now())
    return redirect("desk:ticket", reference=_reference(call))


@require_POST
@agent_required
def wrap_up(request: HttpRequest, pk: int) -> HttpResponse:
    agent = signed_in_user(request)
    call = call_get_for(agent, pk)
    form = WrapUpForm(request.POST)
    if not form.is_valid():
        return _refused(request, form)
    try:
        with transaction.atomic():
            call_wrap_up(
                call=call,
                agent=agent,
                note=form.cleaned_data["note"],
                status=form.cleaned_data["status"],
                at=timezone.now(),
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _back(request, reverse("desk:inbox"))
    messages.success(request, _("Wrap-up saved."))
    return _back(request, reverse("desk:inbox"))


@require_POST
@agent_required
def dial(request: HttpRequest) -> HttpResponse:
    """A ``tel:`` link clicked on a ticket page: the outbound call, dialled now; JSON ``{"call": id}``.

    The browser goes on to the phone as the link says; the call is the
    agent's pop until they end it (``dial_end``). A second click on the same
    number within ``DIAL_AGAIN_WITHIN`` is the same call.
    """
    agent = signed_in_user(request)
    ticket = ticket_get_for(agent, str(request.POST.get("ticket", "")).strip())
    if ticket.merged_into_id is not None:
        return JsonResponse({"detail": _("This ticket was merged into another.")}, status=409)
    try:
        number = phone_number(str(request.POST.get("number", "")))
    except InvalidIdentity as exc:
        return JsonResponse({"detail": str(exc.message), "number": [str(exc.message)]}, status=400)
    count = rate_count(scope="phone-dial", key=str(agent.pk), window_seconds=60)
    if count is not None and count.attempts > DIALS_PER_MINUTE:
        response = JsonResponse({"detail": _("Too many calls dialled, try again later.")}, status=429)
        response["Retry-After"] = str(count.retry_after)
        return response
    now = timezone.now()
    again = (
        Call.objects.filter(
            line__isnull=True,
            agent=agent,
            ticket=ticket,
            number=number,
            state=CallState.RINGING,
            rang_at__gte=now - DIAL_AGAIN_WITHIN,
        )
        .order_by("-pk")
        .first()
    )
    if again is not None:
        return JsonResponse({"call": again.pk})
    try:
        with transaction.atomic():
            call = call_dial(agent=agent, ticket=ticket, number=number, at=now)
            call_push_after_commit(call)
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message, **({exc.field: [exc.message]} if exc.field else {})}, status=400)
    return JsonResponse({"call": call.pk}, status=201)


@require_POST
@agent_required
def dial_end(request: HttpRequest, pk: int) -> HttpResponse:
    """The agent ends a call they dialled: its outcome, note and ticket status; the contact is recorded."""
    agent = signed_in_user(request)
    call = call_get_for(agent, pk)
    form = DialEndForm(request.POST)
    if not form.is_valid():
        return _refused(request, form)
    try:
        with transaction.atomic():
            call = call_dial_end(
                call=call,
                agent=agent,
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
                status=form.cleaned_data["status"],
                at=timezone.now(),
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _back(request, reverse("desk:inbox"))
    messages.success(request, _("The call was logged."))
    return _back(request, reverse("desk:ticket", args=[_reference(call)]) if call.ticket_id else reverse("desk:inbox"))


@require_http_methods(["GET", "POST"])
@agent_required
def log_call(request: HttpRequest) -> HttpResponse:
    """ "Log a call" from a ticket (``?ticket=<reference>``) or a customer (``?customer=<id>``)."""
    agent = signed_in_user(request)
    source = request.POST if request.method == "POST" else request.GET
    ticket = None
    customer: Customer | None = None
    if source.get("ticket"):
        ticket = ticket_get_for(agent, str(source["ticket"]).strip())
        customer = ticket.customer
    elif source.get("customer"):
        try:
            customer_pk = int(source["customer"])
        except (TypeError, ValueError):
            raise NotFound("No such customer.") from None
        customer = customers_visible_to(agent).filter(pk=customer_pk, merged_into__isnull=True).first()
    if customer is None:
        raise NotFound("No such customer.")
    if request.method == "POST":
        form = CallLogForm(request.POST, customer=customer, agent=agent)
    else:
        # Prefilled from a tel: link's "Log this call" (number and direction).
        wanted = {key: request.GET[key] for key in ("number", "direction") if request.GET.get(key)}
        form = CallLogForm(initial=wanted, customer=customer, agent=agent)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                call = call_log(
                    agent=agent,
                    customer=customer,
                    ticket=ticket,
                    number=data["number"],
                    direction=data["direction"],
                    started_at=data["started_at"],
                    duration_seconds=data["duration_seconds"],
                    outcome=data["outcome"],
                    note=data["note"],
                    at=timezone.now(),
                )
        except ApplicationError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, _("The call was logged."))
            return redirect("desk:ticket", reference=_reference(call))
    status = 400 if request.method == "POST" else 200
    return render(request, "phone/log.html", {"form": form, "ticket": ticket, "customer": customer}, status=status)
