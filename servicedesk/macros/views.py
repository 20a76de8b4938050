"""The desk's pages for macros and canned replies (``/desk/macros/``, ``/desk/canned/``), the ticket
page's "apply a macro" form and preview, and the rendered text of a canned reply for the reply box.

Everything goes through ``access`` (what the agent may not see is 404; what they
may see but not change is 403) and the services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core import errors
from servicedesk.core.errors import ApplicationError
from servicedesk.core.pagination import page_or_404
from servicedesk.tickets.access import ticket_get_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.idempotency import IdempotencyKeyReused, request_digest

from .access import (
    can_manage,
    canned_replies_visible_to,
    canned_reply_get_for,
    macro_get_for,
    macros_visible_to,
)
from .forms import (
    SUBMISSION_FIELD,
    ActionForm,
    ActionFormSet,
    CannedReplyForm,
    MacroForm,
    formset_actions,
    submission_id_new,
    submission_key,
)
from .models import CannedReply, Macro
from .services import (
    canned_reply_render,
    canned_reply_save,
    macro_apply,
    macro_preview,
    macro_save,
    scoped_delete,
)

PAGE_SIZE = 50


def _manage_or_403(user: Any, item: Macro | CannedReply) -> None:
    if not can_manage(user, item):
        raise PermissionDenied


def _bad_request(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, "400.html", {"reason": reason}, status=400)


# ------------------------------------------------------------------ macros


@require_GET
@agent_required
def macro_list(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    found = macros_visible_to(user).select_related("queue", "owner").order_by("scope", "name", "pk")
    page = page_or_404(found, PAGE_SIZE, request.GET.get("page"))
    rows = [(macro, can_manage(user, macro)) for macro in page.object_list]
    return render(request, "macros/macro_list.html", {"page": page, "rows": rows})


def _macro_editor(
    request: HttpRequest, macro: Macro | None, form: MacroForm, formset: Any, *, status: int = 200
) -> HttpResponse:
    return render(request, "macros/macro_edit.html", {"macro": macro, "form": form, "formset": formset}, status=status)


@require_http_methods(["GET", "POST"])
@agent_required
def macro_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    user = signed_in_user(request)
    macro = macro_get_for(user, pk) if pk is not None else None
    if macro is not None:
        _manage_or_403(user, macro)
    if request.method != "POST":
        if macro is None:
            return _macro_editor(request, None, MacroForm(user=user), ActionFormSet(prefix="actions"))
        initial = [ActionForm.initial_for(action) for action in macro.actions]
        formset = ActionFormSet(prefix="actions", initial=initial)
        return _macro_editor(request, macro, MacroForm(initial=MacroForm.initial_for(macro), user=user), formset)
    form = MacroForm(request.POST, user=user)
    formset = ActionFormSet(request.POST, prefix="actions")
    if not (form.is_valid() and formset.is_valid()):
        return _macro_editor(request, macro, form, formset, status=400)
    actions, rows = formset_actions(formset)
    try:
        saved = macro_save(data=form.macro_input(actions), user=user, macro=macro)
    except errors.PermissionDenied:
        raise PermissionDenied from None
    except ApplicationError as exc:
        index = exc.extra.get("action")
        if exc.field == "actions" and isinstance(index, int) and index < len(rows):
            rows[index].add_error(None, exc.message)
            form.add_error(None, exc.message)
        else:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _macro_editor(request, macro, form, formset, status=400)
    messages.success(request, _("The macro was saved."))
    return redirect("macros:macro_edit", pk=saved.pk)


@require_POST
@agent_required
def macro_delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    macro = macro_get_for(user, pk)
    _manage_or_403(user, macro)
    scoped_delete(item=macro, user=user)
    messages.success(request, _("The macro was deleted."))
    return redirect("macros:macro_list")


def _ticket_and_macro(request: HttpRequest, reference: str, macro_id: str | None) -> tuple[Ticket, Macro] | str:
    """The ticket and the chosen macro, each one the agent may see (else 404); a reason when no macro was chosen."""
    user = signed_in_user(request)
    ticket = ticket_get_for(user, reference)
    raw = (macro_id or "").strip()
    if not raw:
        return _("Choose a macro.")
    if not raw.isdigit():
        return _("Macro: give the macro's id, a whole number.")
    return ticket, macro_get_for(user, raw)


@require_POST
@agent_required
def macro_apply_page(request: HttpRequest, reference: str) -> HttpResponse:
    """The ticket page's "Apply" (and the command palette's and the preview's): back to the ticket
    with what happened. Under the form's ``submission_id``, a form sent twice applies the macro once."""
    try:
        key = submission_key(request.POST.get(SUBMISSION_FIELD))
    except ValueError:
        return _bad_request(request, _("The form is damaged: reload the ticket and apply the macro again."))
    found = _ticket_and_macro(request, reference, request.POST.get("macro"))
    if isinstance(found, str):
        return _bad_request(request, found)
    ticket, macro = found
    user = signed_in_user(request)
    try:
        result = macro_apply(
            macro=macro,
            ticket=ticket,
            actor=Actor.agent(user, source="ui"),
            idempotency_key=key,
            request_digest=request_digest(method="POST", path=request.path, body={"macro": macro.pk}),
        )
    except IdempotencyKeyReused:
        messages.error(
            request,
            _(
                "This form was already sent with another macro, so nothing was applied. "
                "Choose the macro and apply it again."
            ),
        )
        return redirect("desk:ticket", reference=ticket.reference)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("desk:ticket", reference=ticket.reference)
    if result.replayed:
        messages.info(
            request,
            _("The macro %(name)s was already applied from this form; it was not applied again.")
            % {"name": macro.name},
        )
        return redirect("desk:ticket", reference=ticket.reference)
    changed = [step for step in result.steps if step.changed]
    messages.success(
        request,
        _("The macro %(name)s was applied (%(n)d changes).") % {"name": macro.name, "n": len(changed)},
    )
    return redirect("desk:ticket", reference=ticket.reference)


@never_cache
@require_http_methods(["GET", "POST"])
@agent_required
def macro_preview_page(request: HttpRequest, reference: str) -> HttpResponse:
    """What the chosen macro would do to the ticket, with the button that applies it. Also answers
    the ticket page's form (POST, its Preview button): nothing is changed either way."""
    chosen = request.POST.get("macro") if request.method == "POST" else request.GET.get("macro")
    found = _ticket_and_macro(request, reference, chosen)
    if isinstance(found, str):
        return _bad_request(request, found)
    ticket, macro = found
    user = signed_in_user(request)
    try:
        preview = macro_preview(macro=macro, ticket=ticket, actor=Actor.agent(user, source="ui"))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("desk:ticket", reference=ticket.reference)
    context = {"ticket": ticket, "macro": macro, "preview": preview, "submission_id": submission_id_new()}
    return render(request, "macros/preview.html", context)


# ------------------------------------------------------------------ canned replies


@require_GET
@agent_required
def canned_list(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    found = canned_replies_visible_to(user).select_related("queue", "owner").order_by("scope", "name", "pk")
    page = page_or_404(found, PAGE_SIZE, request.GET.get("page"))
    rows = [(canned, can_manage(user, canned)) for canned in page.object_list]
    return render(request, "macros/canned_list.html", {"page": page, "rows": rows})


@require_http_methods(["GET", "POST"])
@agent_required
def canned_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    user = signed_in_user(request)
    canned = canned_reply_get_for(user, pk) if pk is not None else None
    if canned is not None:
        _manage_or_403(user, canned)
    if request.method != "POST":
        initial = CannedReplyForm.initial_for(canned) if canned is not None else None
        form = CannedReplyForm(initial=initial, user=user)
        return render(request, "macros/canned_edit.html", {"canned": canned, "form": form})
    form = CannedReplyForm(request.POST, user=user)
    if form.is_valid():
        try:
            saved = canned_reply_save(data=form.canned_input(), user=user, canned=canned)
        except errors.PermissionDenied:
            raise PermissionDenied from None
        except ApplicationError as exc:
            field = exc.field if exc.field in form.fields else None
            if exc.field == "translations":
                field = None
            form.add_error(field, exc.message)
        else:
            messages.success(request, _("The canned reply was saved."))
            return redirect("macros:canned_edit", pk=saved.pk)
    return render(request, "macros/canned_edit.html", {"canned": canned, "form": form}, status=400)


@require_POST
@agent_required
def canned_delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    canned = canned_reply_get_for(user, pk)
    _manage_or_403(user, canned)
    scoped_delete(item=canned, user=user)
    messages.success(request, _("The canned reply was deleted."))
    return redirect("macros:canned_list")


@never_cache
@require_GET
@agent_required
def canned_render(request: HttpRequest, pk: int) -> JsonResponse:
    """``{"text": ..., "language": ...}``: the canned reply filled in for ``?ticket=<reference>``,
    for the reply box to insert. 404 for a ticket or canned reply the agent may not see."""
    user = signed_in_user(request)
    reference = (request.GET.get("ticket") or "").strip()
    if not reference:
        return JsonResponse({"detail": _("Invalid input."), "ticket": [_("Give the ticket's reference.")]}, status=400)
    ticket = ticket_get_for(user, reference)
    canned = canned_reply_get_for(user, pk)
    try:
        rendered = canned_reply_render(canned=canned, ticket=ticket, user=user)
    except errors.NotFound:
        raise
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message}, status=400)
    return JsonResponse({"text": rendered.text, "language": rendered.language})
