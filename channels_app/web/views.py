"""The help centre: contact form, signed ticket pages and the customer portal.

Every contact enters through ``services.intake.inbound_message_receive`` with
channel ``web``; tickets and attachments are obtained only through
``servicedesk.tickets.access``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from channels_app.web.forms import ContactForm, ReplyForm, SignInForm, form_error_add
from channels_app.web.ratelimit import portal_reply_rate_exceeded, webform_rate_exceeded
from channels_app.web.signin import (
    SignInRefused,
    customer_sign_out,
    customer_sign_out_everywhere,
    portal_customer,
    session_cookie_clear,
    session_cookie_set,
    signin_link_use,
    signin_link_valid,
    signin_request,
)
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.pagination import page_or_404
from servicedesk.tickets import access, selectors
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import IdentityKind, Ticket
from servicedesk.tickets.services.intake import inbound_message_receive

SESSION_REFERENCE_KEY = "web.contact.reference"
PORTAL_PAGE_SIZE = 25


def help_home(request: HttpRequest) -> HttpResponse:
    return render(request, "web/home.html", {"support_address": settings.SERVICEDESK["SUPPORT_ADDRESS"]})


def _contact_page(request: HttpRequest, form: ContactForm, *, status: int = 200) -> HttpResponse:
    conf = settings.SERVICEDESK
    context = {
        "form": form,
        "attachment_max_count": conf["ATTACHMENT_MAX_COUNT"],
        "attachment_max_bytes": conf["ATTACHMENT_MAX_BYTES"],
    }
    return render(request, "web/contact.html", context, status=status)


@require_http_methods(["GET", "POST"])
def contact(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _contact_page(request, ContactForm())
    form = ContactForm(request.POST, request.FILES)
    if form.is_spam():
        # Looks accepted to the robot; nothing is stored.
        request.session.pop(SESSION_REFERENCE_KEY, None)
        return redirect("web:contact_received")
    if not form.is_valid():
        return _contact_page(request, form)
    data = form.cleaned_data
    # A re-post of a stored submission (a double click, a retry) stores nothing: it is not counted.
    seen = selectors.inbound_message_seen(channel="web", external_id=data["submission_id"])
    if not seen and webform_rate_exceeded(client_ip=request.META.get("REMOTE_ADDR", ""), email=data["email"]):
        form.add_error(None, _("Too many requests, try again later."))
        return _contact_page(request, form, status=429)
    inbound = InboundMessage(
        channel="web",
        external_id=data["submission_id"],
        sender=SenderIdentity(kind=IdentityKind.EMAIL, value=data["email"], name=data["name"]),
        subject=data["subject"],
        text=data["message"],
        topic=data["topic"].slug if data["topic"] else None,
        language=get_language() or "",
        attachments=tuple(data["attachments"]),
    )
    try:
        result = inbound_message_receive(inbound=inbound)
    except ApplicationError as exc:
        form_error_add(form, exc)
        return _contact_page(request, form)
    request.session[SESSION_REFERENCE_KEY] = result.ticket.reference
    return redirect("web:contact_received")


def contact_received(request: HttpRequest) -> HttpResponse:
    # The reference travels in the session, so only the sender's browser sees it.
    reference = request.session.get(SESSION_REFERENCE_KEY)
    return render(request, "web/contact_received.html", {"reference": reference})


@never_cache
def portal_home(request: HttpRequest) -> HttpResponse:
    # The customer the help centre's own sign-in names: never the desk's signed-in user.
    viewer = portal_customer(request)
    if viewer is None:
        return render(request, "web/portal_anonymous.html")
    tickets = access.tickets_visible_to(viewer).order_by("-created_at", "-id")
    page = page_or_404(tickets, PORTAL_PAGE_SIZE, request.GET.get("page"))
    rows = [(ticket, access.portal_token_for(ticket)) for ticket in page.object_list]
    return render(request, "web/portal.html", {"page": page, "rows": rows, "customer": viewer.customer})


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    """Ask for a sign-in link; the answer is the same for every well-formed address."""
    if request.method != "POST":
        return render(request, "web/sign_in.html", {"form": SignInForm()})
    form = SignInForm(request.POST)
    if not form.is_valid():
        return render(request, "web/sign_in.html", {"form": form}, status=400)
    try:
        signin_request(
            address=form.cleaned_data["email"],
            client_ip=request.META.get("REMOTE_ADDR", ""),
            language=get_language() or "",
        )
    except SignInRefused as exc:
        form.add_error(None, _("Too many sign-in links asked for from here; try again later."))
        response = render(request, "web/sign_in.html", {"form": form}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    return redirect("web:sign_in_sent")


def sign_in_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "web/sign_in_sent.html", {"minutes": settings.SERVICEDESK["HELP_SIGNIN_LINK_MINUTES"]})


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in_link(request: HttpRequest, token: str) -> HttpResponse:
    """The mailed link: opening it shows a button (mail scanners open links); the button signs in."""
    if request.method != "POST":
        valid = signin_link_valid(token) is not None
        return render(request, "web/sign_in_link.html", {"valid": valid}, status=200 if valid else 400)
    key = signin_link_use(token=token, user_agent=request.META.get("HTTP_USER_AGENT", ""))
    if key is None:
        return render(request, "web/sign_in_link.html", {"valid": False}, status=400)
    response = redirect("web:portal")
    session_cookie_set(response, key)
    return response


@require_http_methods(["POST"])
def sign_out(request: HttpRequest) -> HttpResponse:
    customer_sign_out(request)
    response = redirect("web:sign_in")
    session_cookie_clear(response)
    return response


@require_http_methods(["POST"])
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    viewer = portal_customer(request)
    if viewer is not None:
        customer_sign_out_everywhere(viewer)
    response = redirect("web:sign_in")
    session_cookie_clear(response)
    return response


def _ticket_for_token(token: str) -> Ticket:
    try:
        return access.ticket_for_portal_token(token)
    except NotFound:
        raise Http404 from None


def _reply_sender(ticket: Ticket) -> SenderIdentity | None:
    """The identity a portal reply comes from: the customer's first email address
    (any other identity of theirs when they have none)."""
    identities = list(ticket.customer.identities.order_by("pk").values_list("kind", "value"))
    emails = [item for item in identities if item[0] == IdentityKind.EMAIL]
    candidates = emails or identities
    if not candidates:
        return None
    kind, value = candidates[0]
    return SenderIdentity(kind=kind, value=value, name=ticket.customer.name)


def _reply_receive(ticket: Ticket, form: ReplyForm) -> bool:
    """Hand a valid portal reply to intake; False, with the reason on the form, when refused."""
    sender = _reply_sender(ticket)
    if sender is None:
        form.add_error(None, _("This request cannot take replies here; please write to us by email."))
        return False
    inbound = InboundMessage(
        channel="web",
        external_id=form.cleaned_data["submission_id"],
        sender=sender,
        text=form.cleaned_data["message"],
        attachments=tuple(form.cleaned_data["attachments"]),
        # The signed link authenticated the sender for this ticket.
        ticket_reference=ticket.reference,
        reference_trusted=True,
        acknowledge=False,
        language=get_language() or "",
    )
    try:
        inbound_message_receive(inbound=inbound)
    except ApplicationError as exc:
        form_error_add(form, exc)
        return False
    return True


def _reply_rate_exceeded(request: HttpRequest, ticket: Ticket, form: ReplyForm) -> bool:
    """Count a reply through the signed link per ticket and per IP; a re-post of a stored one is not counted."""
    if selectors.inbound_message_seen(channel="web", external_id=form.cleaned_data["submission_id"]):
        return False
    return portal_reply_rate_exceeded(ticket_id=ticket.pk, client_ip=request.META.get("REMOTE_ADDR", ""))


@never_cache
@require_http_methods(["GET", "POST"])
def ticket(request: HttpRequest, token: str) -> HttpResponse:
    current = _ticket_for_token(token)
    form = ReplyForm(request.POST, request.FILES) if request.method == "POST" else ReplyForm()
    status = 200
    if form.is_bound and form.is_valid():
        if _reply_rate_exceeded(request, current, form):
            form.add_error(None, _("Too many replies, try again later."))
            status = 429
        elif _reply_receive(current, form):
            messages.success(request, _("Your reply was added to your request."))
            return redirect("web:ticket", token=token)
    thread = (
        access.messages_visible_to(AnonymousUser(), current)
        .select_related("author_user", "author_customer")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )
    return render(
        request, "web/ticket.html", {"ticket": current, "thread": thread, "token": token, "form": form}, status=status
    )


@never_cache
def attachment(request: HttpRequest, token: str, key: str) -> FileResponse:
    current = _ticket_for_token(token)
    try:
        found = access.attachment_get_for_portal(current, key)
        handle = found.file.open("rb")
    except (NotFound, OSError):
        raise Http404 from None
    response = FileResponse(handle, as_attachment=True, filename=found.filename, content_type=found.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
