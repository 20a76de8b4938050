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
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from channels_app.web.forms import (
    AddEmailForm,
    AddPhoneForm,
    CodeForm,
    ContactForm,
    ReplyForm,
    SignInForm,
    SurveyForm,
    form_error_add,
)
from channels_app.web.models import IdentityVerification
from channels_app.web.ratelimit import portal_reply_rate_exceeded, webform_rate_exceeded
from channels_app.web.signin import (
    PortalCustomer,
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
from channels_app.web.verify import (
    verification_code_use,
    verification_link_use,
    verification_link_valid,
    verification_start,
)
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.pagination import page_or_404
from servicedesk.kb.deflection import request_submitted
from servicedesk.tickets import access, selectors
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Customer, IdentityKind, Ticket
from servicedesk.tickets.services.intake import customer_may_reopen, inbound_message_receive
from servicedesk.tickets.services.surveys import (
    SCORES,
    SurveyClosed,
    survey_answer,
    survey_for_token,
    survey_is_open,
    survey_open_for,
    survey_token,
)
from servicedesk.tickets.services.tickets import ticket_status_change
from servicedesk.tickets.statuses import Status

SESSION_REFERENCE_KEY = "web.contact.reference"
PORTAL_PAGE_SIZE = 25
# A ticket page's attachments: under its signed link, or under its reference for a signed-in customer.
ATTACHMENT_URL_NAMES = {"web:ticket": "web:attachment", "web:request": "web:request_attachment"}


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


def _contact_initial(request: HttpRequest) -> dict[str, str]:
    """A signed-in customer's name and first email address, for a new request."""
    viewer = portal_customer(request)
    if viewer is None:
        return {}
    address = (
        viewer.customer.identities.filter(kind=IdentityKind.EMAIL)
        .order_by("pk")
        .values_list("value", flat=True)
        .first()
    )
    return {"name": viewer.customer.name, "email": address or ""}


@require_http_methods(["GET", "POST"])
def contact(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _contact_page(request, ContactForm(initial=_contact_initial(request)))
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
    if not seen and request.session.session_key:
        request_submitted(key=request.session.session_key)
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
    tickets = (
        access.tickets_visible_to(viewer)
        .select_related("customer")
        .only("reference", "subject", "status", "channel", "created_at", "updated_at", "customer_id", "customer__name")
        .order_by("-updated_at", "-id")
    )
    page = page_or_404(tickets, PORTAL_PAGE_SIZE, request.GET.get("page"))
    context = {
        "page": page,
        "rows": page.object_list,
        "customer": viewer.customer,
        "organization": viewer.customer.is_org_manager and viewer.customer.organization_id is not None,
    }
    return render(request, "web/portal.html", context)


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


def _ticket_page(
    request: HttpRequest,
    current: Ticket,
    *,
    url_name: str,
    arg: str,
    acts: bool,
) -> HttpResponse:
    """A ticket's public thread, and for its customer the reply box, "my problem is solved"
    and reopen. ``url_name``/``arg``: the page's own address (its signed link, or its
    reference for a signed-in customer), which its attachments and actions hang under."""
    form = ReplyForm(request.POST, request.FILES) if acts and request.method == "POST" else ReplyForm()
    status = 200
    if form.is_bound and form.is_valid():
        if _reply_rate_exceeded(request, current, form):
            form.add_error(None, _("Too many replies, try again later."))
            status = 429
        elif _reply_receive(current, form):
            messages.success(request, _("Your reply was added to your request."))
            return redirect(url_name, arg)
    thread = (
        access.messages_visible_to(AnonymousUser(), current)
        .select_related("author_user", "author_customer")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )
    context = {
        "ticket": current,
        "thread": thread,
        "form": form,
        "acts": acts,
        "url_name": url_name,
        "arg": arg,
        "attachment_url_name": ATTACHMENT_URL_NAMES[url_name],
        "status_url": reverse(url_name + "_status", args=[arg]),
        "reopens": current.is_solved and customer_may_reopen(current, timezone.now()),
        "reopen_days": settings.SERVICEDESK["REOPEN_WINDOW_DAYS"],
        "survey": _survey_offer(current) if acts else None,
    }
    return render(request, "web/ticket.html", context, status=status)


def _survey_offer(current: Ticket) -> dict[str, object] | None:
    """The open survey of a solved request, to answer from its page: its answer so far and a link per score."""
    found = survey_open_for(current)
    if found is None:
        return None
    return {
        "rating": found.rating,
        "links": [(score, reverse("web:survey", args=[survey_token(found)]) + f"?score={score}") for score in SCORES],
    }


def _status_change(request: HttpRequest, current: Ticket, customer: Customer) -> None:
    """The customer's "my problem is solved" or reopen, with a message saying what happened."""
    action = request.POST.get("action", "")
    actor = Actor.of_customer(customer, source="portal")
    if action == "solve" and not current.is_solved:
        ticket_status_change(ticket=current, status=Status.SOLVED, actor=actor)
        messages.success(request, _("Your request is marked as solved. Thank you!"))
    elif action == "reopen" and current.is_solved:
        if not customer_may_reopen(current, timezone.now()):
            messages.error(request, _("This request was closed too long ago to reopen; please send a new request."))
            return
        ticket_status_change(ticket=current, status=Status.OPEN, actor=actor)
        messages.success(request, _("Your request is open again. We will get back to you."))


@never_cache
@require_http_methods(["GET", "POST"])
def ticket(request: HttpRequest, token: str) -> HttpResponse:
    """A ticket through its signed link: its customer's own page."""
    return _ticket_page(request, _ticket_for_token(token), url_name="web:ticket", arg=token, acts=True)


@require_http_methods(["POST"])
def ticket_status(request: HttpRequest, token: str) -> HttpResponse:
    current = _ticket_for_token(token)
    _status_change(request, current, current.customer)
    return redirect("web:ticket", token)


def _request_for(viewer: PortalCustomer, reference: str) -> Ticket:
    """A request the signed-in customer may see, by reference (a merged one: its target), else 404."""
    visible = access.tickets_visible_to(viewer)
    found = visible.select_related("customer").filter(reference=reference).first()
    if found is None:
        source = Ticket.objects.only("pk", "merged_into_id").filter(reference=reference).first()
        found = access.merge_follow(source, visible=visible) if source is not None else None
    if found is None:
        raise Http404
    return found


def _signed_in(request: HttpRequest) -> PortalCustomer | HttpResponse:
    viewer = portal_customer(request)
    if viewer is None:
        return redirect("web:sign_in")
    return viewer


@never_cache
@require_http_methods(["GET", "POST"])
def request_detail(request: HttpRequest, reference: str) -> HttpResponse:
    """A request in the signed-in customer's list: their own (with the reply box and the
    status buttons), or, for an organization manager, a colleague's (to read)."""
    viewer = _signed_in(request)
    if isinstance(viewer, HttpResponse):
        return viewer
    current = _request_for(viewer, reference)
    if current.reference != reference:
        return redirect("web:request", current.reference)
    own = current.customer_id == viewer.customer.pk
    return _ticket_page(request, current, url_name="web:request", arg=reference, acts=own)


@require_http_methods(["POST"])
def request_status(request: HttpRequest, reference: str) -> HttpResponse:
    viewer = _signed_in(request)
    if isinstance(viewer, HttpResponse):
        return viewer
    current = _request_for(viewer, reference)
    if current.customer_id != viewer.customer.pk:
        raise Http404
    _status_change(request, current, viewer.customer)
    return redirect("web:request", current.reference)


@never_cache
def request_attachment(request: HttpRequest, reference: str, key: str) -> FileResponse:
    viewer = portal_customer(request)
    if viewer is None:
        raise Http404
    return _attachment_response(_request_for(viewer, reference), key)


@never_cache
def ticket_attachment(request: HttpRequest, token: str, key: str) -> FileResponse:
    return _attachment_response(_ticket_for_token(token), key)


def _attachment_response(current: Ticket, key: str) -> FileResponse:
    try:
        found = access.attachment_get_for_portal(current, key)
        handle = found.file.open("rb")
    except (NotFound, OSError):
        raise Http404 from None
    response = FileResponse(handle, as_attachment=True, filename=found.filename, content_type=found.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def survey(request: HttpRequest, token: str) -> HttpResponse:
    """A satisfaction survey: opening a score link shows that score, a comment box and one
    button (mail scanners open every link); only the button records the answer."""
    try:
        found = survey_for_token(token)
    except NotFound:
        return render(request, "web/survey.html", {"state": "invalid"}, status=404)
    if not survey_is_open(found):
        return render(request, "web/survey.html", {"state": "closed", "survey": found})
    if request.method == "POST":
        form = SurveyForm(request.POST)
        if form.is_valid():
            try:
                survey_answer(survey=found, score=form.cleaned_data["score"], comment=form.cleaned_data["comment"])
            except SurveyClosed:
                return render(request, "web/survey.html", {"state": "closed", "survey": found})
            except ApplicationError as exc:
                form_error_add(form, exc)
            else:
                return render(request, "web/survey.html", {"state": "thanks", "survey": found})
        return render(request, "web/survey.html", {"state": "open", "survey": found, "form": form}, status=400)
    score = request.GET.get("score", "")
    initial: dict[str, object] = {}
    if found.rating is not None:
        # Answered already: the answer as it stands, to change.
        initial = {"score": found.rating.score, "comment": found.rating.comment}
    if score in {"1", "2", "3", "4", "5"}:
        initial["score"] = int(score)
    form = SurveyForm(initial=initial)
    return render(request, "web/survey.html", {"state": "open", "survey": found, "form": form})


def _account_page(
    request: HttpRequest,
    viewer: PortalCustomer,
    *,
    email_form: AddEmailForm | None = None,
    phone_form: AddPhoneForm | None = None,
    code_form: CodeForm | None = None,
    pending: IdentityVerification | None = None,
    status: int = 200,
) -> HttpResponse:
    identities = viewer.customer.identities.filter(kind__in=[IdentityKind.EMAIL, IdentityKind.PHONE]).order_by(
        "kind", "value"
    )
    context = {
        "identities": identities,
        "email_form": email_form or AddEmailForm(),
        "phone_form": phone_form or AddPhoneForm(),
        "code_form": code_form or CodeForm(),
        "pending": pending,
    }
    return render(request, "web/account.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """A signed-in customer's addresses, and adding one by proving it (``verify.py``)."""
    viewer = _signed_in(request)
    if isinstance(viewer, HttpResponse):
        return viewer
    pending = IdentityVerification.objects.filter(
        pk=request.GET.get("check") or 0, customer=viewer.customer, used_at__isnull=True
    ).first()
    if request.method != "POST":
        return _account_page(request, viewer, pending=pending)
    language = get_language() or ""
    if "email" in request.POST:
        form = AddEmailForm(request.POST)
        if form.is_valid():
            try:
                verification_start(
                    customer=viewer.customer,
                    kind=IdentityKind.EMAIL,
                    value=form.cleaned_data["email"],
                    language=language,
                )
            except ApplicationError as exc:
                form_error_add(form, exc)
            else:
                messages.success(request, _("We sent a link to that address: open it to add the address."))
                return redirect("web:account")
        return _account_page(request, viewer, email_form=form, status=400)
    if "phone" in request.POST:
        phone_form = AddPhoneForm(request.POST)
        if phone_form.is_valid():
            try:
                check = verification_start(
                    customer=viewer.customer,
                    kind=IdentityKind.PHONE,
                    value=phone_form.cleaned_data["phone"],
                    language=language,
                )
            except ApplicationError as exc:
                form_error_add(phone_form, exc)
            else:
                messages.success(request, _("We sent a code to that number: enter it below."))
                return redirect(f"{reverse('web:account')}?check={check.pk}")
        return _account_page(request, viewer, phone_form=phone_form, status=400)
    code_form = CodeForm(request.POST)
    if code_form.is_valid():
        try:
            verification_code_use(
                customer=viewer.customer,
                check_id=int(request.POST.get("check") or 0),
                code=code_form.cleaned_data["code"],
            )
        except (ApplicationError, ValueError) as exc:
            if isinstance(exc, ApplicationError):
                form_error_add(code_form, exc)
            return _account_page(request, viewer, code_form=code_form, pending=pending, status=400)
        messages.success(request, _("The number is checked. Thank you."))
        return redirect("web:account")
    return _account_page(request, viewer, code_form=code_form, pending=pending, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
def account_verify(request: HttpRequest, token: str) -> HttpResponse:
    """The mailed link that proves an address: a button (mail scanners open links), which proves it."""
    if request.method != "POST":
        valid = verification_link_valid(token) is not None
        return render(request, "web/verify_link.html", {"valid": valid}, status=200 if valid else 400)
    if verification_link_use(token) is None:
        return render(request, "web/verify_link.html", {"valid": False}, status=400)
    return render(request, "web/verify_link.html", {"valid": True, "done": True})
