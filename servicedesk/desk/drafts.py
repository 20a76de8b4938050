"""The ticket page's reply drafts, held replies and collision hold (docs/drafts.md).

Every path reads the ticket through ``selectors.ticket_detail`` (404 for a
ticket the agent may not see) and only the signed-in agent's own drafts and
held replies; the services in ``tickets/services/drafts.py`` do the writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core.errors import ApplicationError, Conflict, NotFound
from servicedesk.desk import sla
from servicedesk.desk.forms import ReplyForm
from servicedesk.tickets import selectors
from servicedesk.tickets.models import DraftKind, HeldReply, Message, MessageKind, ReplyDraft, Ticket
from servicedesk.tickets.services import drafts
from servicedesk.tickets.services.attachments import draft_attachments_of


class DraftForm(forms.Form):
    """One save of a draft: the kind, the text (empty removes it) and the quote choice."""

    kind = forms.ChoiceField(choices=DraftKind.choices, label=gettext_lazy("Type"))
    text = forms.CharField(
        required=False, strip=False, max_length=drafts.DRAFT_MAX_LENGTH, label=gettext_lazy("Message")
    )
    quote_history = forms.BooleanField(required=False)


class DraftKindForm(forms.Form):
    kind = forms.ChoiceField(choices=DraftKind.choices, label=gettext_lazy("Type"))


def saved_label(user: Any, at: Any) -> str:
    """ "Draft saved HH:MM" in the agent's time zone."""
    shown = timezone.localtime(at, sla.agent_time_zone(user))
    return _("Draft saved %(time)s") % {"time": shown.strftime("%H:%M")}


def newest_customer_message_id(thread: Sequence[Message]) -> int:
    """The newest customer message the page shows (0 for none): the form's ``after_message``."""
    return max((m.pk for m in thread if m.kind == MessageKind.PUBLIC_ENDUSER), default=0)


def reply_box(
    request: HttpRequest,
    ticket: Ticket,
    thread: Sequence[Message],
    *,
    reply_form: ReplyForm | None,
    collision: Sequence[Message] = (),
) -> dict[str, Any]:
    """What the ticket page's reply box shows: the form (filled from the agent's own draft when
    not re-shown after a submit), the drafts for switching kind, held and returned replies, the
    files kept for the next reply (ticked unless a re-shown form left them out) and a collision."""
    user = signed_in_user(request)
    own: dict[str, ReplyDraft] = drafts.reply_drafts_of(agent=user, ticket=ticket)
    after_message = newest_customer_message_id(thread)
    if reply_form is None:
        shown = own.get(DraftKind.REPLY) or own.get(DraftKind.NOTE)
        initial: dict[str, Any] = {"after_message": after_message}
        if shown is not None:
            initial.update(text=shown.text, kind=shown.kind, quote_history=shown.quote_history)
        reply_form = ReplyForm(initial=initial)
    if reply_form.is_bound:
        posted = str(reply_form.data.get("after_message", ""))
        after_message = int(posted) if posted.isdigit() else after_message
    else:
        after_message = reply_form.initial.get("after_message", after_message)
    newest = max((d.updated_at for d in own.values()), default=None)
    now = timezone.now()
    held: list[HeldReply] = drafts.held_replies_of(agent=user, ticket=ticket)
    # A form shown again after a refused submit keeps the agent's ticks; otherwise every kept file is ticked.
    ticked: set[str] | None = None
    if reply_form.is_bound and hasattr(reply_form.data, "getlist"):
        ticked = set(reply_form.data.getlist("kept_files"))
    kept = [
        {"file": file, "ticked": ticked is None or file.key in ticked}
        for file in draft_attachments_of(agent=user, ticket=ticket)
    ]
    return {
        "reply_form": reply_form,
        "after_message": after_message,
        "reply_drafts": {kind: draft.text for kind, draft in own.items()},
        "draft_saved": saved_label(user, newest) if newest else "",
        "held_replies": [
            {
                "reply": h,
                "seconds": max(0, int((h.send_after - now).total_seconds() + 0.999)),
                # Whole seconds since the epoch, down: what held_reply_state_json looks from.
                "since": int(h.created_at.timestamp()),
            }
            for h in held
        ],
        "returned_replies": drafts.returned_replies_of(agent=user, ticket=ticket),
        "kept_files": kept,
        "collision": list(collision),
    }


def _errors(form: forms.Form) -> dict[str, Any]:
    return {"detail": _("Invalid input."), **{field: [str(e) for e in errs] for field, errs in form.errors.items()}}


@require_POST
@agent_required
def draft_save(request: HttpRequest, reference: str) -> HttpResponse:
    """Save the agent's draft (fetch while typing, or navigator.sendBeacon when leaving): JSON."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    form = DraftForm(request.POST)
    if not form.is_valid():
        return JsonResponse(_errors(form), status=400)
    data = form.cleaned_data
    try:
        draft = drafts.reply_draft_save(
            agent=agent, ticket=found, kind=data["kind"], text=data["text"], quote_history=data["quote_history"]
        )
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message, exc.field or "detail": [exc.message]}, status=400)
    if draft is None:
        return JsonResponse({"saved": False, "label": ""})
    return JsonResponse(
        {"saved": True, "saved_at": draft.updated_at.isoformat(), "label": saved_label(agent, draft.updated_at)}
    )


@require_POST
@agent_required
def draft_discard(request: HttpRequest, reference: str) -> HttpResponse:
    """Discard the agent's draft of a kind; a form post goes back to the ticket, fetch gets JSON."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    form = DraftKindForm(request.POST)
    wants_json = "application/json" in request.headers.get("Accept", "")
    if not form.is_valid():
        if wants_json:
            return JsonResponse(_errors(form), status=400)
        messages.error(request, _("Choose a public reply or an internal note."))
        return redirect("desk:ticket", reference=found.reference)
    drafts.reply_draft_discard(agent=agent, ticket=found, kind=form.cleaned_data["kind"])
    if wants_json:
        return JsonResponse({"discarded": True})
    messages.info(request, _("The draft was discarded."))
    return redirect("desk:ticket", reference=found.reference)


@require_POST
@agent_required
def held_reply_undo(request: HttpRequest, reference: str, held_id: int) -> HttpResponse:
    """Undo a held reply: back into the reply box, or "already sent" once its window has passed."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    try:
        drafts.held_reply_undo(held_id=held_id, ticket=found, agent=agent)
    except NotFound as exc:
        raise Http404 from exc
    except Conflict as exc:
        messages.info(request, exc.message)
    else:
        messages.success(request, _("Your reply was not sent. It is back in the reply box."))
    return redirect("desk:ticket", reference=found.reference)


# Largest ``since`` taken: seconds since the epoch, well past any date a reply is held at.
_SINCE_MAX = 10**11


@require_GET
@agent_required
def held_reply_state_json(request: HttpRequest, reference: str, held_id: int) -> JsonResponse:
    """What became of the agent's held reply (``drafts.held_reply_state``), for the countdown
    of drafts.js, which says "Sent" only when this does: ``state``, ``label`` in the agent's
    language, ``seconds`` left and, for a reply returned, ``url`` of the ticket it is on.
    ``since``: when it was sent, in whole seconds since the epoch (the page gives it)."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    since = str(request.GET.get("since", ""))
    if not (since.isdigit() and int(since) < _SINCE_MAX):
        message = _("Give when the reply was sent, in whole seconds since 1970.")
        return JsonResponse({"detail": _("Invalid input."), "since": [message]}, status=400)
    state = drafts.held_reply_state(
        agent=agent, held_id=held_id, ticket=found, since=datetime.fromtimestamp(int(since), tz=UTC)
    )
    labels = {
        "held": _("Sending in %(seconds)s s") % {"seconds": state.seconds},
        "sending": _("Sending…"),
        "sent": _("Sent"),
        "returned": _("Not sent: %(reason)s.") % {"reason": state.reason},
        "undone": _("Not sent: it was taken back into the reply box."),
    }
    body: dict[str, Any] = {"state": state.state, "label": labels[state.state], "seconds": state.seconds}
    if state.reference:
        body["url"] = reverse("desk:ticket", args=[state.reference]) + f"#returned-reply-{held_id}"
        body["link"] = _("Open it to put it back in the reply box or discard it")
    return JsonResponse(body)


@require_POST
@agent_required
def held_reply_discard(request: HttpRequest, reference: str, held_id: int) -> HttpResponse:
    """Discard a reply that could not be sent, with its files (only its agent's, 404 otherwise)."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    try:
        drafts.held_reply_discard(held_id=held_id, ticket=found, agent=agent)
    except NotFound as exc:
        raise Http404 from exc
    messages.info(request, _("The reply that was not sent was discarded."))
    return redirect("desk:ticket", reference=found.reference)
