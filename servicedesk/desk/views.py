"""The agent workspace: sign-in, inbox, ticket, customer and attachment download.

Views read through ``selectors`` and ``access`` and write through the services;
anything the signed-in agent may not see answers 404.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core.errors import ApplicationError
from servicedesk.core.pagination import page_or_404
from servicedesk.desk import drafts, merging, sla
from servicedesk.desk.forms import (
    ACTION_SEND,
    ACTION_SEND_SOLVED,
    ACTION_UPDATE,
    ACTIONS,
    TICKET_FORM_ID,
    DeskAuthenticationForm,
    ReplyForm,
    TicketPropertiesForm,
)
from servicedesk.desk.inbox import inbox_page
from servicedesk.desk.timeline import ticket_timeline
from servicedesk.tickets import access, selectors
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, CustomerEvent, CustomerMerge, HeldReply, Identity, Message, Ticket
from servicedesk.tickets.selectors import TicketFilters
from servicedesk.tickets.services import customers, delivery, mentions, replies, surveys, tickets
from servicedesk.tickets.services.drafts import draft_attachments_keep, reply_draft_save, undo_send_seconds
from servicedesk.tickets.services.replies import AgentDraft, CustomerWroteMeanwhile
from servicedesk.tickets.statuses import Status

CUSTOMER_PAGE_SIZE = 25


class DeskLoginView(LoginView):
    template_name = "desk/login.html"
    authentication_form = DeskAuthenticationForm


class DeskLogoutView(LogoutView):
    pass


@require_GET
@agent_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The inbox: filters, columns, saved views and bulk actions (servicedesk/desk/inbox.py)."""
    return inbox_page(request)


def _ticket_page(
    request: HttpRequest,
    ticket: Ticket,
    *,
    reply_form: ReplyForm | None = None,
    properties_form: TicketPropertiesForm | None = None,
    status: int = 200,
    collision: Sequence[Message] = (),
) -> HttpResponse:
    thread = list(
        access.messages_visible_to(request.user, ticket)
        .select_related("author_user", "author_customer")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )
    # A customer the agent may not see is shown as a stand-in (docs/architecture.md, "Access rules").
    access.customers_conceal(request.user, [ticket], messages=thread)
    customer = ticket.customer  # loaded with its organization by ticket_detail
    agent_tz = sla.agent_time_zone(request.user)
    board = sla.SlaBoard([ticket], sla.now())
    return render(
        request,
        "desk/ticket.html",
        {
            "ticket": ticket,
            "merge_target": access.ticket_merge_target_for(request.user, ticket),
            "thread": thread,
            "timeline": ticket_timeline(ticket, user=request.user, tz=agent_tz),
            "agent_tz": agent_tz,
            "sla_targets": board.targets(ticket),
            "sla_headline": board.headline(ticket),
            "sla_formats": sla.script_formats(),
            "customer": customer,
            # A stand-in has no history to show: its record is not this agent's to read.
            "other_tickets": (
                []
                if customer.concealed
                else selectors.customer_tickets(user=request.user, customer=customer, exclude=ticket)
            ),
            # The form, the agent's own drafts and held replies, a collision (desk/drafts.py).
            **drafts.reply_box(request, ticket, thread, reply_form=reply_form, collision=collision),
            "properties_form": properties_form or TicketPropertiesForm(ticket=ticket, user=request.user),
            "ticket_form_id": TICKET_FORM_ID,
            "can_delete": sees_all_queues(request.user),
            "satisfaction": surveys.ticket_satisfaction(ticket),
        },
        status=status,
    )


@require_GET
@agent_required
def ticket(request: HttpRequest, reference: str) -> HttpResponse:
    found = selectors.ticket_detail(user=request.user, reference=reference)
    return merging.merged_redirect(request, found) or _ticket_page(request, found)


@require_POST
@agent_required
def ticket_reply(request: HttpRequest, reference: str) -> HttpResponse:
    """The ticket page's form; without an ``action`` button it sends the reply."""
    return _ticket_submit(request, reference, default_action=ACTION_SEND)


@require_POST
@agent_required
def ticket_update(request: HttpRequest, reference: str) -> HttpResponse:
    """The ticket page's form; without an ``action`` button it updates the properties only."""
    return _ticket_submit(request, reference, default_action=ACTION_UPDATE)


def _ticket_submit(request: HttpRequest, reference: str, *, default_action: str) -> HttpResponse:
    """One submit of the ticket page: the reply or note and the changed properties, in one service call.

    A refusal re-renders the page with what the agent typed and chose (when
    there is nothing typed, an update's refusal is a message on the ticket
    page instead); a conflict shows the newer values and who set them.
    """
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    action = request.POST.get("action")
    action = action if action in ACTIONS else default_action
    reply_form = ReplyForm(request.POST, request.FILES, require_text=action != ACTION_UPDATE)
    props = TicketPropertiesForm(request.POST, ticket=found, user=agent)
    keep_page = action != ACTION_UPDATE or reply_form.has_text
    if not (reply_form.is_valid() and props.is_valid()):
        if keep_page:
            messages.error(request, _("Your message was not saved. Please correct the errors below."))
            return _ticket_page(request, found, reply_form=reply_form, properties_form=props, status=400)
        return _refused(request, found, props)
    changes = props.changes()
    if action == ACTION_SEND_SOLVED:
        changes["status"] = Status.SOLVED
    draft = None
    if action != ACTION_UPDATE:
        data = reply_form.cleaned_data
        draft = AgentDraft(
            kind=data["kind"],
            text=data["text"],
            attachments=data["attachments"],
            quote_history=data["quote_history"],
            kept_files=data["kept_files"],
        )
    elif not changes:
        messages.info(request, _("Nothing was changed."))
        return _after_submit(request, found, reply_form)
    try:
        written = replies.ticket_respond(
            ticket=found,
            author=agent,
            actor=Actor.agent(agent, source="ui"),
            draft=draft,
            changes=changes,
            originals=props.originals(),
            version=props.cleaned_data.get("version"),
            hold_seconds=undo_send_seconds(),
            seen_message_id=None if reply_form.cleaned_data["force"] else reply_form.cleaned_data["after_message"],
        )
    except CustomerWroteMeanwhile as exc:
        return _collision(request, found, reply_form, props, exc)
    except tickets.TicketConflict as exc:
        current = selectors.ticket_detail(user=agent, reference=reference)
        for conflict in exc.conflicts:
            messages.error(request, conflict.describe())
        messages.error(
            request, _("Nothing was saved. The newer values are shown; check your choices and submit again.")
        )
        rebased = TicketPropertiesForm.rebased(request.POST, ticket=current, user=agent)
        return _ticket_page(request, current, reply_form=reply_form, properties_form=rebased, status=409)
    except ApplicationError as exc:
        if not keep_page:
            messages.error(request, exc.message)
            return redirect("desk:ticket", reference=found.reference)
        target = reply_form if exc.field in reply_form.fields else props
        target.add_error(exc.field if exc.field in target.fields else None, exc.message)
        messages.error(request, _("Your message was not saved. Please correct the errors below."))
        return _ticket_page(request, found, reply_form=reply_form, properties_form=props, status=400)
    if draft is None:
        messages.success(request, _("The ticket was updated."))
        return _after_submit(request, found, reply_form)
    if isinstance(written, HeldReply):
        messages.success(request, _("Your reply will be sent in a few seconds; you can still undo it."))
    elif draft.kind == ReplyForm.KIND_REPLY:
        messages.success(request, _("Your reply was sent to the customer."))
    else:
        messages.success(request, _("Your internal note was added."))
        # Names the note mentions that reached nobody (services/mentions.py).
        unnotified = mentions.mention_names_unnotified(ticket=found, text=draft.text, author=agent)
        if unnotified:
            messages.warning(
                request,
                _("Not notified (unknown, ambiguous, or not allowed to see this ticket): %(names)s")
                % {"names": ", ".join(mentions.mention_label(name) for name in unnotified)},
            )
    return redirect("desk:ticket", reference=found.reference)


def _collision(
    request: HttpRequest,
    ticket: Ticket,
    reply_form: ReplyForm,
    props: TicketPropertiesForm,
    exc: CustomerWroteMeanwhile,
) -> HttpResponse:
    """The customer wrote while the agent typed: nothing was sent; the reply is kept as their draft
    and its new files kept for it, the page shows the new messages and offers "Send anyway" (this
    form again, the kept files ticked) or "Review"."""
    data = reply_form.cleaned_data
    agent = signed_in_user(request)
    reply_draft_save(
        agent=agent,
        ticket=ticket,
        kind=data["kind"],
        text=data["text"],
        quote_history=data["quote_history"],
    )
    messages.warning(request, exc.message)
    if data["kind"] == ReplyForm.KIND_REPLY and data["attachments"]:
        try:
            draft_attachments_keep(agent=agent, ticket=ticket, attachments=data["attachments"])
        except ApplicationError as refused:
            messages.error(
                request, _("Your files were not kept (%(reason)s); attach them again.") % {"reason": refused.message}
            )
    current = selectors.ticket_detail(user=request.user, reference=str(ticket.reference))
    kept = ReplyForm(
        initial={
            "text": data["text"],
            "kind": data["kind"],
            "quote_history": data["quote_history"],
            "after_message": exc.messages[-1].pk,
        }
    )
    return _ticket_page(request, current, reply_form=kept, properties_form=props, status=409, collision=exc.messages)


@require_POST
@agent_required
def message_resend(request: HttpRequest, reference: str, message_id: int) -> HttpResponse:
    """Queue a message whose delivery failed for delivery again."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    message = access.messages_visible_to(agent, found).filter(pk=message_id).select_related("ticket").first()
    if message is None:
        raise Http404
    try:
        delivery.message_delivery_retry(message=message, actor=Actor.agent(agent, source="ui"))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The message was queued to be sent again."))
    return redirect("desk:ticket", reference=found.reference)


def _refused(request: HttpRequest, ticket: Ticket, props: TicketPropertiesForm) -> HttpResponse:
    for field, errors in props.errors.items():
        label = props.fields[field].label if field in props.fields else ""
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else str(error))
    return redirect("desk:ticket", reference=ticket.reference)


def _after_submit(request: HttpRequest, ticket: Ticket, reply_form: ReplyForm) -> HttpResponse:
    """Back to the ticket; a reply typed but not sent (the Update button) stays in the form."""
    if not reply_form.has_text:
        return redirect("desk:ticket", reference=ticket.reference)
    messages.info(request, _("Your reply has not been sent yet."))
    current = selectors.ticket_detail(user=request.user, reference=str(ticket.reference))
    kept = ReplyForm(
        initial={
            "text": reply_form.cleaned_data["text"],
            "kind": reply_form.cleaned_data["kind"],
            "quote_history": reply_form.cleaned_data["quote_history"],
        }
    )
    return _ticket_page(request, current, reply_form=kept)


def _set_aside_post(
    request: HttpRequest,
    ticket: Ticket,
    *,
    name: str,
    change: Callable[[bool], Any],
    invalid: str,
    done: tuple[str, str],
) -> HttpResponse:
    """Apply a yes/no choice posted as ``name`` (1 or 0): set aside goes back to the inbox, back stays on the ticket."""
    choice = request.POST.get(name)
    if choice not in ("0", "1"):
        messages.error(request, invalid)
        return redirect("desk:ticket", reference=ticket.reference)
    change(choice == "1")
    messages.success(request, done[0] if choice == "1" else done[1])
    if choice == "1":
        return redirect("desk:inbox")
    return redirect("desk:ticket", reference=ticket.reference)


@require_POST
@agent_required
def ticket_spam(request: HttpRequest, reference: str) -> HttpResponse:
    """Mark the ticket as spam (``spam=1``) or as not spam (``spam=0``)."""
    agent = signed_in_user(request)
    found = selectors.ticket_detail(user=agent, reference=reference)
    actor = Actor.agent(agent, source="ui")
    return _set_aside_post(
        request,
        found,
        name="spam",
        change=lambda spam: tickets.ticket_spam_set(ticket=found, spam=spam, actor=actor),
        invalid=_("Choose whether the ticket is spam."),
        done=(_("The ticket was marked as spam."), _("The ticket is no longer marked as spam.")),
    )


@require_POST
@agent_required
def ticket_delete(request: HttpRequest, reference: str) -> HttpResponse:
    """Managers and admins delete a ticket (``deleted=1``) or restore it (``deleted=0``); agents get 403."""
    user = signed_in_user(request)
    found = selectors.ticket_detail(user=user, reference=reference)
    if not sees_all_queues(user):
        raise PermissionDenied
    actor = Actor.agent(user, source="ui")
    return _set_aside_post(
        request,
        found,
        name="deleted",
        change=lambda deleted: tickets.ticket_delete_set(ticket=found, deleted=deleted, actor=actor),
        invalid=_("Choose whether to delete the ticket or restore it."),
        done=(
            _("The ticket was deleted. Managers can restore it from the Deleted view."),
            _("The ticket was restored."),
        ),
    )


@require_GET
@agent_required
def customer(request: HttpRequest, pk: int) -> HttpResponse:
    found = (
        access.customers_visible_to(request.user)
        .select_related("organization", "merged_into")
        .prefetch_related(Prefetch("identities", queryset=Identity.objects.select_related("bouncing_changed_by")))
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise Http404
    filters = TicketFilters(customer=found.pk, include_merged=True, sort="-created")
    page = page_or_404(
        selectors.ticket_list(user=request.user, filters=filters), CUSTOMER_PAGE_SIZE, request.GET.get("page")
    )
    since = selectors.customer_first_contact(customer=found)
    visible = access.customers_visible_to(request.user)
    context = {
        "customer": found,
        "page": page,
        "customer_since": since,
        "can_set_org_manager": sees_all_queues(request.user),
        "duplicates": [] if found.merged_into_id else customers.customer_duplicates(customer=found, among=visible),
        "customer_events": list(
            CustomerEvent.objects.filter(customer=found)
            .select_related("other", "merge", "actor_user")
            .order_by("-at")[:50]
        ),
    }
    return render(request, "desk/customer.html", context)


def _merge_pair(request: HttpRequest, source_pk: int, target_pk: int) -> tuple[Customer, Customer]:
    """Both records of a merge, each one the agent may see and neither merged away; else 404."""
    visible = access.customers_visible_to(request.user).select_related("organization")
    source = visible.filter(pk=source_pk, merged_into__isnull=True).first()
    target = visible.filter(pk=target_pk, merged_into__isnull=True).first()
    if source is None or target is None or source.pk == target.pk:
        raise Http404
    return source, target


@require_http_methods(["GET", "POST"])
@agent_required
def customer_merge(request: HttpRequest, pk: int, target_pk: int) -> HttpResponse:
    """Preview what merging record ``pk`` into ``target_pk`` moves (GET), and merge (POST)."""
    source, target = _merge_pair(request, pk, target_pk)
    if request.method == "POST":
        agent = signed_in_user(request)
        try:
            customers.customer_merge(source=source, target=target, actor=Actor.agent(agent, source="ui"))
        except ApplicationError as exc:
            messages.error(request, str(exc.message))
            return redirect("desk:customer", pk=target.pk)
        messages.success(
            request, _("%(source)s was merged into this record. You can undo it below.") % {"source": source}
        )
        return redirect("desk:customer", pk=target.pk)
    preview = customers.customer_merge_preview(source=source, target=target)
    return render(request, "desk/customer_merge.html", {"preview": preview})


@require_POST
@agent_required
def customer_unmerge(request: HttpRequest, merge_pk: int) -> HttpResponse:
    """Undo a merge into a record the agent may see."""
    merge = (
        CustomerMerge.objects.filter(pk=merge_pk, target__in=access.customers_visible_to(request.user))
        .select_related("source", "target")
        .first()
    )
    if merge is None:
        raise Http404
    agent = signed_in_user(request)
    try:
        customers.customer_unmerge(merge=merge, actor=Actor.agent(agent, source="ui"))
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
        return redirect("desk:customer", pk=merge.target_id)
    messages.success(
        request, _("The merge was undone: %(source)s is a record of its own again.") % {"source": merge.source}
    )
    return redirect("desk:customer", pk=merge.target_id)


@require_POST
@agent_required
def customer_org_manager_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Let a customer see their organization's requests in the help centre, or stop it (managers and admins)."""
    manager = signed_in_user(request)
    if not sees_all_queues(manager):
        raise Http404
    found = access.customers_visible_to(manager).filter(pk=pk, merged_into__isnull=True).first()
    if found is None or found.organization_id is None:
        raise Http404
    value = request.POST.get("is_org_manager") == "1"
    customers.customer_org_manager_set(customer=found, value=value, actor=Actor.agent(manager, source="ui"))
    if value:
        messages.success(request, _("This customer now sees their organization's requests in the help centre."))
    else:
        messages.success(request, _("This customer now sees only their own requests in the help centre."))
    return redirect("desk:customer", pk=pk)


@require_POST
@agent_required
def customer_identity_bouncing_clear(request: HttpRequest, pk: int, identity_pk: int) -> HttpResponse:
    """Clear the bouncing mark of one of the customer's addresses (customers the agent may see only)."""
    agent = signed_in_user(request)
    identity = access.identity_get_for(agent, customer_pk=pk, identity_pk=identity_pk)
    if customers.identity_bouncing_clear(identity=identity, actor=Actor.agent(agent, source="ui")):
        messages.success(request, _("%(address)s is no longer marked as bouncing.") % {"address": identity.value})
    else:
        messages.info(request, _("%(address)s was not marked as bouncing.") % {"address": identity.value})
    return redirect("desk:customer", pk=pk)


@require_GET
@agent_required
def attachment(request: HttpRequest, key: str) -> FileResponse:
    found = access.attachment_get_for(request.user, key)
    try:
        handle = found.file.open("rb")
    except (FileNotFoundError, ValueError) as exc:
        raise Http404 from exc
    response = FileResponse(handle, as_attachment=True, filename=found.filename, content_type=found.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response
