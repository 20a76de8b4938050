"""The community's pages in the desk, under ``/desk/community/``: the moderation queue, the log of
moderator actions, and the forms of moderator actions and escalation (docs/community.md, "Moderation").

Agents only (``agent_required``: anyone else gets 404, a visitor the sign-in page), as the knowledge
base's editor. Every form is a POST with its CSRF token and calls one service; a malformed form is
400, a refusal comes back as a message on the page the form was on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.pagination import page_or_404
from servicedesk.tickets import access as ticket_access
from servicedesk.tickets.models import MessageKind

from .escalation import post_escalate, ticket_reply_post_back, ticket_summary_post, topic_escalate
from .models import Category, Member, Post, Topic
from .moderation import (
    HOLD_LABELS,
    REASON_MAX,
    SUSPEND_MAX_DAYS,
    actions_log,
    flagged_posts,
    held_posts,
    member_suspend,
    member_unsuspend,
    post_approve,
    post_hide,
    post_reject,
    post_unhide,
    topic_lock_set,
    topic_merge,
    topic_move,
    topic_pin_set,
)
from .moderation import flags_dismiss as flags_dismiss_service
from .services import topic_url

QUEUE_SIZE = 100
LOG_PAGE_SIZE = 50


class ReasonForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason (optional)"), max_length=REASON_MAX, required=False)


class MoveForm(ReasonForm):
    category = forms.ModelChoiceField(label=gettext_lazy("Move to"), queryset=Category.objects.all())


class MergeForm(ReasonForm):
    into = forms.IntegerField(label=gettext_lazy("Merge into topic number"), min_value=1)


class EscalateForm(forms.Form):
    public_note = forms.BooleanField(
        label=gettext_lazy("Say on the topic that it moved to private support"), required=False
    )


class SuspendForm(ReasonForm):
    days = forms.IntegerField(label=gettext_lazy("Days"), min_value=1, max_value=SUSPEND_MAX_DAYS)


class SummaryForm(forms.Form):
    text = forms.CharField(label=gettext_lazy("Summary"), max_length=50_000, widget=forms.Textarea(attrs={"rows": 6}))


def _back(request: HttpRequest) -> HttpResponse:
    """To the page the form was on (``next``, this site only), else the queue."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("forum_desk:queue")


def _bad_form() -> HttpResponse:
    return HttpResponse(
        _("The form was not filled in correctly."), status=400, content_type="text/plain; charset=utf-8"
    )


def _run(request: HttpRequest, act: Callable[[], Any], done: str, unchanged: str) -> HttpResponse:
    try:
        changed = act()
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
    else:
        if changed:
            messages.success(request, done)
        else:
            messages.info(request, unchanged)
    return _back(request)


def _post(pk: int) -> Post:
    post = Post.objects.select_related("topic__category", "author").filter(pk=pk).first()
    if post is None:
        raise Http404
    return post


def _topic(pk: int) -> Topic:
    topic = Topic.objects.select_related("category", "author").filter(pk=pk).first()
    if topic is None:
        raise Http404
    return topic


# ---------------------------------------------------------------- pages


@require_GET
@agent_required
def queue(request: HttpRequest) -> HttpResponse:
    """Held posts (oldest first) and flagged posts (most flags first), with their actions."""
    held = list(held_posts()[:QUEUE_SIZE])
    flagged = list(flagged_posts().prefetch_related("flags")[:QUEUE_SIZE])
    for post in held:
        post.hold_label = HOLD_LABELS.get(post.hold_reason, "")  # type: ignore[attr-defined]
    return render(request, "forum/desk_queue.html", {"held": held, "flagged": flagged})


@require_GET
@agent_required
def log(request: HttpRequest) -> HttpResponse:
    """Every moderator action, newest first, 50 a page."""
    page = page_or_404(actions_log(), LOG_PAGE_SIZE, request.GET.get("page"))
    return render(request, "forum/desk_log.html", {"page": page})


# ---------------------------------------------------------------- posts


@require_POST
@agent_required
def post_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """approve, reject, hide, unhide or dismiss (the flags) one post."""
    agent = signed_in_user(request)
    post = _post(pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _bad_form()
    reason = form.cleaned_data["reason"]
    actions: dict[str, tuple[Callable[[], Any], str]] = {
        "approve": (lambda: post_approve(agent=agent, post=post, reason=reason), _("The post was approved.")),
        "reject": (lambda: post_reject(agent=agent, post=post, reason=reason), _("The post was rejected.")),
        "hide": (lambda: post_hide(agent=agent, post=post, reason=reason), _("The post was hidden.")),
        "unhide": (lambda: post_unhide(agent=agent, post=post, reason=reason), _("The post is shown again.")),
        "dismiss": (
            lambda: flags_dismiss_service(agent=agent, post=post, reason=reason),
            _("The flags were dismissed."),
        ),
    }
    if action not in actions:
        raise Http404
    act, done = actions[action]
    return _run(request, act, done, _("Nothing changed: the post was already so."))


@require_POST
@agent_required
def post_escalate_view(request: HttpRequest, pk: int) -> HttpResponse:
    agent = signed_in_user(request)
    post = _post(pk)
    try:
        ticket = post_escalate(post=post, agent=agent)
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
        return _back(request)
    messages.success(request, _("The post is ticket %(reference)s.") % {"reference": ticket.reference})
    return redirect("desk:ticket", reference=ticket.reference)


# ---------------------------------------------------------------- topics


@require_POST
@agent_required
def topic_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """lock, unlock, pin, unpin, move (``category``) or merge (``into``) one topic."""
    agent = signed_in_user(request)
    topic = _topic(pk)
    unchanged = _("Nothing changed: the topic was already so.")
    if action in ("lock", "unlock", "pin", "unpin"):
        form = ReasonForm(request.POST)
        if not form.is_valid():
            return _bad_form()
        reason = form.cleaned_data["reason"]
        if action in ("lock", "unlock"):
            locked = action == "lock"
            done = _("The topic was locked.") if locked else _("The topic was unlocked.")
            return _run(
                request, lambda: topic_lock_set(agent=agent, topic=topic, locked=locked, reason=reason), done, unchanged
            )
        pinned = action == "pin"
        done = _("The topic was pinned.") if pinned else _("The topic was unpinned.")
        return _run(
            request, lambda: topic_pin_set(agent=agent, topic=topic, pinned=pinned, reason=reason), done, unchanged
        )
    if action == "move":
        move = MoveForm(request.POST)
        if not move.is_valid():
            return _bad_form()
        category = move.cleaned_data["category"]
        return _run(
            request,
            lambda: topic_move(agent=agent, topic=topic, category=category, reason=move.cleaned_data["reason"]),
            _("The topic was moved."),
            unchanged,
        )
    if action == "merge":
        merge = MergeForm(request.POST)
        if not merge.is_valid():
            return _bad_form()
        into = Topic.objects.filter(pk=merge.cleaned_data["into"]).first()
        if into is None:
            messages.error(request, _("There is no topic with that number."))
            return _back(request)
        return _run(
            request,
            lambda: topic_merge(agent=agent, topic=topic, into=into, reason=merge.cleaned_data["reason"]),
            _("The topic was merged."),
            unchanged,
        )
    raise Http404


@require_POST
@agent_required
def topic_escalate_view(request: HttpRequest, pk: int) -> HttpResponse:
    agent = signed_in_user(request)
    topic = _topic(pk)
    form = EscalateForm(request.POST)
    if not form.is_valid():
        return _bad_form()
    try:
        ticket = topic_escalate(topic=topic, agent=agent, public_note=form.cleaned_data["public_note"])
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
        return _back(request)
    messages.success(request, _("The topic is ticket %(reference)s.") % {"reference": ticket.reference})
    return redirect("desk:ticket", reference=ticket.reference)


# ---------------------------------------------------------------- members


@require_POST
@agent_required
def member_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """suspend (``days``) or unsuspend one member."""
    agent = signed_in_user(request)
    member = Member.objects.filter(pk=pk).first()
    if member is None or action not in ("suspend", "unsuspend"):
        raise Http404
    if action == "unsuspend":
        form: forms.Form = ReasonForm(request.POST)
        if not form.is_valid():
            return _bad_form()
        return _run(
            request,
            lambda: member_unsuspend(agent=agent, member=member, reason=form.cleaned_data["reason"]),
            _("The suspension was lifted."),
            _("Nothing changed: the member was not suspended."),
        )
    form = SuspendForm(request.POST)
    if not form.is_valid():
        return _bad_form()
    until = timezone.now() + timedelta(days=form.cleaned_data["days"])
    return _run(
        request,
        lambda: member_suspend(agent=agent, member=member, until=until, reason=form.cleaned_data["reason"]),
        _("The member was suspended."),
        _("Nothing changed."),
    )


# ---------------------------------------------------------------- from a ticket


def _ticket(request: HttpRequest, reference: str) -> Any:
    try:
        return ticket_access.ticket_get_for(signed_in_user(request), reference)
    except NotFound:
        raise Http404 from None


@require_POST
@agent_required
def ticket_post_back(request: HttpRequest, reference: str, message_id: int) -> HttpResponse:
    """Post an agent's public reply of a ticket escalated from the community on its topic (once)."""
    agent = signed_in_user(request)
    ticket = _ticket(request, reference)
    message = (
        ticket_access.messages_visible_to(agent, ticket)
        .filter(pk=message_id, kind=MessageKind.PUBLIC_AGENT)
        .select_related("ticket")
        .first()
    )
    if message is None:
        raise Http404
    try:
        post = ticket_reply_post_back(message=message, agent=agent)
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("The reply is on the topic."))
        return redirect(f"{topic_url(post.topic)}#post-{post.position}")
    return redirect("desk:ticket", reference=ticket.reference)


@require_POST
@agent_required
def ticket_summary(request: HttpRequest, reference: str) -> HttpResponse:
    """Post a solved ticket's summary on its topic and accept it as the answer."""
    agent = signed_in_user(request)
    ticket = _ticket(request, reference)
    form = SummaryForm(request.POST)
    if not form.is_valid():
        return _bad_form()
    try:
        post = ticket_summary_post(ticket=ticket, text=form.cleaned_data["text"], agent=agent)
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
        return redirect("desk:ticket", reference=ticket.reference)
    messages.success(request, _("The summary is on the topic."))
    return redirect(f"{topic_url(post.topic)}#post-{post.position}")
