"""The community's pages under ``/community/``: server-rendered, readable without JavaScript.

Every category, topic and post is obtained through ``access.py`` with the
request's viewer (an agent signed in to the desk, else the customer the help
centre's cookie signs in, else nobody), so what a viewer may not read is 404
on the page, the feed and the sitemap alike. Every change is one service
call; the views check the form, call it and answer. Each page runs the same
number of queries however many topics and posts there are.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Exists, OuterRef, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from channels_app.web.signin import portal_customer
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.pagination import page_or_404

from . import access
from .access import Viewer
from .forms import EditForm, FlagForm, ProfileForm, ReplyForm, ToggleForm, TopicForm
from .models import (
    Category,
    ForumAttachment,
    Kind,
    Like,
    Member,
    MeToo,
    Post,
    State,
    Subscription,
    Topic,
    Vote,
)
from .moderation import post_flag
from .services import (
    member_ensure,
    member_mentions_mute,
    member_profile_update,
    post_accept,
    post_create,
    post_edit,
    post_like,
    post_unaccept,
    subscription_set,
    subscription_unsubscribe,
    topic_create,
    topic_me_too,
    topic_url,
    topic_vote,
)

TOPICS_PER_PAGE = 30
REPLIES_PER_PAGE = 20
FEED_ENTRIES = 30
SITEMAP_URLS = 10_000

# JSON inside a <script> element: nothing in it may close the element or open a comment.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(data: Any) -> SafeString:
    """``data`` as JSON safe to place inside ``<script type="application/ld+json">``."""
    return mark_safe(json.dumps(data, ensure_ascii=False).translate(_SCRIPT_ESCAPES))  # noqa: S308


def viewer_of(request: HttpRequest) -> Viewer:
    """The request's viewer: an agent signed in to the desk, else the help centre's customer, else nobody."""
    cached = getattr(request, "forum_viewer", None)
    if cached is not None:
        return cached
    user = request.user
    customer = None
    if not (user.is_authenticated and is_agent(user)):
        signed_in = portal_customer(request)
        customer = signed_in.customer if signed_in is not None else None
    viewer = access.viewer_for(user=user, customer=customer)
    request.forum_viewer = viewer  # type: ignore[attr-defined]
    return viewer


def _writer(request: HttpRequest) -> Viewer | None:
    """The viewer with their forum profile (made on their first write), or None for a visitor."""
    viewer = viewer_of(request)
    if not viewer.signed_in:
        return None
    if viewer.member is None:
        member = member_ensure(customer=viewer.customer) if viewer.customer else member_ensure(user=viewer.agent)
        viewer = Viewer(customer=viewer.customer, agent=viewer.agent, member=member)
        request.forum_viewer = viewer  # type: ignore[attr-defined]
    return viewer


def _sign_in_first(request: HttpRequest) -> HttpResponse:
    messages.info(request, _("Sign in to write in the community."))
    return redirect("web:sign_in")


def _language() -> str:
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"


def _canonical(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def _topic_or_404(viewer: Viewer, pk: int) -> Topic:
    try:
        return access.topic_get_for(viewer, pk)
    except NotFound:
        raise Http404 from None


def _post_or_404(viewer: Viewer, pk: int) -> Post:
    try:
        return access.post_get_for(viewer, pk)
    except NotFound:
        raise Http404 from None


# ---------------------------------------------------------------- reading


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The categories the viewer reads, with their counters (one query)."""
    viewer = viewer_of(request)
    language = _language()
    categories = [
        (category, category.label(language), category.about(language))
        for category in access.categories_visible_to(viewer).order_by("position", "name")
    ]
    return render(
        request,
        "forum/home.html",
        {"categories": categories, "viewer": viewer, "canonical": _canonical(reverse("forum:home"))},
    )


@require_GET
def category_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A category's topics, pinned first then by latest activity, filtered by kind, 30 a page
    (index ``forum_topic_list`` / ``forum_topic_list_kind``)."""
    viewer = viewer_of(request)
    try:
        category = access.category_get_for(viewer, slug)
    except NotFound:
        raise Http404 from None
    kind = request.GET.get("kind", "")
    topics = access.topics_visible_to(viewer, own_unlisted=False).filter(category=category, merged_into__isnull=True)
    if kind in Kind.values:
        topics = topics.filter(kind=kind)
    else:
        kind = ""
    order = ("-pinned", "-last_post_at", "-id")
    # The page's ids first, from the list index alone (a deep page skips index entries, not rows),
    # then those rows with their authors: one statement.
    page = page_or_404(topics.order_by(*order).values_list("pk", flat=True), TOPICS_PER_PAGE, request.GET.get("page"))
    page.object_list = list(Topic.objects.filter(pk__in=page.object_list).select_related("author").order_by(*order))
    subscribed = bool(
        viewer.member
        and Subscription.objects.filter(member=viewer.member, category=category, unsubscribed_at__isnull=True).exists()
    )
    path = reverse("forum:category", args=[category.slug])
    query = f"?kind={kind}&page={page.number}" if kind else (f"?page={page.number}" if page.number > 1 else "")
    context = {
        "category": category,
        "label": category.label(_language()),
        "about": category.about(_language()),
        "page": page,
        "kind": kind,
        "kinds": Kind.choices,
        "viewer": viewer,
        "subscribed": subscribed,
        "may_write": access.may_write_in(viewer, category),
        "canonical": _canonical(path + query),
        "feed_url": reverse("forum:feed", args=[category.slug]),
    }
    return render(request, "forum/category.html", context)


def _qa_structured_data(topic: Topic, question: Post, accepted: list[Post], replies_count: int) -> dict[str, Any]:
    """schema.org QAPage of an answered question (https://schema.org/QAPage), texts as plain text."""

    def answer(post: Post) -> dict[str, Any]:
        return {
            "@type": "Answer",
            "text": post.body_text,
            "dateCreated": post.created_at.isoformat(),
            "upvoteCount": post.likes_count,
            "url": _canonical(reverse("forum:post", args=[post.pk])),
            "author": {"@type": "Person", "name": post.author.display_name},
        }

    return {
        "@context": "https://schema.org",
        "@type": "QAPage",
        "mainEntity": {
            "@type": "Question",
            "name": topic.title,
            "text": question.body_text,
            "answerCount": replies_count,
            "dateCreated": topic.created_at.isoformat(),
            "author": {"@type": "Person", "name": question.author.display_name},
            "acceptedAnswer": [answer(post) for post in accepted],
        },
    }


@require_GET
def topic_page(request: HttpRequest, pk: int, slug: str = "") -> HttpResponse:
    """A topic: its opening post, the accepted answers right under it, then the replies, 20 a page
    (index ``forum_post_topic``); a wrong or missing slug redirects to the canonical address."""
    viewer = viewer_of(request)
    topic = _topic_or_404(viewer, pk)
    if topic.merged_into_id is not None:
        # Merged: its address leads to the topic it was merged into, for whoever reads that one.
        return redirect(topic_url(_topic_or_404(viewer, topic.merged_into_id)), permanent=True)
    canonical_path = topic_url(topic)
    if slug != topic.slug:
        target = canonical_path + (f"?{request.GET.urlencode()}" if request.GET else "")
        return redirect(target, permanent=True)
    visible = access.posts_visible_to(viewer, topic).select_related("author")
    head = list(visible.filter(Q(position=1) | Q(accepted=True)).order_by("position"))
    question = head[0] if head and head[0].position == 1 else None
    accepted = [post for post in head if post.position > 1]
    # The page's positions from the replies' index, then those replies (one statement, as the list's ids).
    positions = visible.filter(position__gt=1).order_by("position").values_list("position", flat=True)
    page = page_or_404(positions, REPLIES_PER_PAGE, request.GET.get("page"))
    replies = list(visible.filter(position__in=page.object_list).order_by("position"))
    page.object_list = replies
    _attachments_fill([*head, *replies])
    member = viewer.member
    liked: set[int] = set()
    mine = {"voted": False, "me_too": False, "subscribed": False}
    if member is not None:
        shown = [post.pk for post in [*head, *replies]]
        liked = set(Like.objects.filter(member=member, post_id__in=shown).values_list("post_id", flat=True))
        found = (
            Topic.objects.filter(pk=topic.pk)
            .annotate(
                voted=Exists(Vote.objects.filter(topic=OuterRef("pk"), member=member)),
                me_too=Exists(MeToo.objects.filter(topic=OuterRef("pk"), member=member)),
                subscribed=Exists(
                    Subscription.objects.filter(topic=OuterRef("pk"), member=member, unsubscribed_at__isnull=True)
                ),
            )
            .values("voted", "me_too", "subscribed")
            .first()
        )
        mine.update(found or {})
    may_accept = access.may_accept(viewer, topic)
    _actions_fill([*head, *replies], viewer, liked=liked, may_accept=may_accept)
    structured = None
    if topic.kind == Kind.QUESTION and accepted and question is not None and topic.state == State.VISIBLE:
        structured = script_json(_qa_structured_data(topic, question, accepted, page.paginator.count))
    context = {
        "topic": topic,
        "category_label": topic.category.label(_language()),
        "question": question,
        "accepted": accepted,
        "page": page,
        "replies": replies,
        "mine": mine,
        "viewer": viewer,
        "may_reply": access.may_reply(viewer, topic),
        "reply_form": ReplyForm(),
        "canonical": _canonical(canonical_path + (f"?page={page.number}" if page.number > 1 else "")),
        "structured_data": structured,
        "merged_into": topic.merged_into_id,
        # Staff see the moderator's forms (lock, pin, move, merge, escalate), posting to /desk/community/.
        "move_categories": list(Category.objects.exclude(pk=topic.category_id).order_by("position", "name"))
        if viewer.is_staff
        else [],
    }
    return render(request, "forum/topic.html", context)


# The moderators' buttons under a post, by action (``forum_desk:post_action``).
MODERATION_BUTTONS = {
    "approve": gettext_lazy("Approve"),
    "reject": gettext_lazy("Reject"),
    "unhide": gettext_lazy("Show again"),
    "hide": gettext_lazy("Hide"),
}
# The buttons a post in each state shows them (a visible one: hide).
MODERATION_SHOWN = {State.HELD.value: ("approve", "reject"), State.HIDDEN.value: ("unhide",)}

# Stands for a post's id in an address reversed once per page (``_address_of``).
_PK_MARK = 987654321


def _address_of(name: str, *after: str) -> Any:
    """The address of the URL ``name`` for any post id, reversed once: a page of 20 posts with
    their reaction, flag and moderation links would otherwise reverse each of them every time."""
    head, tail = reverse(name, args=[_PK_MARK, *after]).split(str(_PK_MARK), 1)
    return lambda pk: f"{head}{pk}{tail}"


def _actions_fill(posts: list[Post], viewer: Viewer, *, liked: set[int], may_accept: bool) -> None:
    """What the viewer may do with each post, and where (``post.act``, read by ``forum/_post.html``)."""
    own_id = viewer.member.pk if viewer.member is not None else None
    link, like, accept, edit, flag = (
        _address_of(f"forum:{name}") for name in ("post", "like", "accept", "post_edit", "flag")
    )
    moderation = {}
    if viewer.is_staff:
        moderation = {action: _address_of("forum_desk:post_action", action) for action in MODERATION_BUTTONS}
        escalate = _address_of("forum_desk:post_escalate")
    for post in posts:
        reply, mine = post.position > 1, own_id is not None and post.author_id == own_id
        act: dict[str, Any] = {"link": link(post.pk), "liked": post.pk in liked}
        if viewer.signed_in and reply and not mine:
            act["like"] = like(post.pk)
        if may_accept and reply and post.state == State.VISIBLE:
            act["accept"] = accept(post.pk)
        if viewer.is_staff or mine:
            act["edit"] = edit(post.pk)
        if viewer.signed_in and not viewer.is_staff and post.state == State.VISIBLE and not mine:
            act["flag"] = flag(post.pk)
        if viewer.is_staff:
            shown = MODERATION_SHOWN.get(str(post.state), ("hide",))
            act["moderate"] = [(moderation[action], MODERATION_BUTTONS[action]) for action in shown]
            if reply and not post.is_staff:
                act["escalate"] = escalate(post.pk)
        post.act = act  # type: ignore[attr-defined]


def _attachments_fill(posts: list[Post]) -> None:
    """Each post's files as ``post.files`` (images first), in one query for the page."""
    by_post: dict[int, list[ForumAttachment]] = {post.pk: [] for post in posts}
    if by_post:
        for attachment in ForumAttachment.objects.filter(post_id__in=list(by_post)).order_by("pk"):
            by_post[attachment.post_id].append(attachment)  # type: ignore[index]
    for post in posts:
        files = by_post.get(post.pk, [])
        post.files = sorted(files, key=lambda f: not f.content_type.startswith("image/"))  # type: ignore[attr-defined]


@never_cache
@require_GET
def attachment(request: HttpRequest, key: str) -> FileResponse:
    """A post's file, to whoever may read the post (``access.can_read_post``), else 404 (as its topic)."""
    found = ForumAttachment.objects.select_related("post__topic__category").filter(key=key).first()
    if found is None or found.post is None or not access.can_read_post(viewer_of(request), found.post):
        raise Http404
    try:
        handle = found.file.open("rb")
    except OSError:
        raise Http404 from None
    inline = found.content_type in INLINE_TYPES
    response = FileResponse(handle, content_type=found.content_type, as_attachment=not inline, filename=found.filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# Shown in the page (images the help centre accepts); anything else is downloaded.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@require_GET
def topic_short(request: HttpRequest, pk: int) -> HttpResponse:
    """``/community/t/<id>/``: the topic's canonical address, for whoever may read it."""
    return topic_page(request, pk, slug="")


@require_GET
def post_link(request: HttpRequest, pk: int) -> HttpResponse:
    """A post's own link (mail, structured data): the page of its topic that shows it."""
    viewer = viewer_of(request)
    post = _post_or_404(viewer, pk)
    target = topic_url(post.topic)
    if post.position > 1 and not post.accepted:
        before = access.posts_visible_to(viewer, post.topic).filter(position__gt=1, position__lt=post.position).count()
        number = before // REPLIES_PER_PAGE + 1
        if number > 1:
            target += f"?page={number}"
    return redirect(f"{target}#post-{post.position}")


# ---------------------------------------------------------------- writing


def _form_error(form: Any, exc: ApplicationError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))


@require_http_methods(["GET", "POST"])
def topic_new(request: HttpRequest, slug: str) -> HttpResponse:
    viewer = viewer_of(request)
    try:
        category = access.category_get_for(viewer, slug)
    except NotFound:
        raise Http404 from None
    if not viewer.signed_in:
        return _sign_in_first(request)

    def page(form: TopicForm, status: int = 200) -> HttpResponse:
        context = {"category": category, "label": category.label(_language()), "form": form, "viewer": viewer}
        return render(request, "forum/topic_new.html", context, status=status)

    if request.method != "POST":
        return page(TopicForm(staff=viewer.is_staff))
    form = TopicForm(request.POST, request.FILES, staff=viewer.is_staff)
    if not form.is_valid():
        return page(form, 400)
    writer = _writer(request)
    assert writer is not None and writer.member is not None
    try:
        data = dict(form.cleaned_data)
        topic = topic_create(member=writer.member, category=category, files=data.pop("attachments"), **data)
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        _form_error(form, exc)
        return page(form, exc.status_code)
    if topic.state == State.HELD:
        messages.info(request, _("Your topic waits for a moderator's approval; until then only you and staff see it."))
    return redirect(topic_url(topic))


@require_POST
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = viewer_of(request)
    topic = _topic_or_404(viewer, pk)
    writer = _writer(request)
    if writer is None or writer.member is None:
        return _sign_in_first(request)
    form = ReplyForm(request.POST, request.FILES)
    error = ""
    if form.is_valid():
        try:
            post = post_create(
                member=writer.member,
                topic=topic,
                body=form.cleaned_data["body"],
                files=form.cleaned_data["attachments"],
            )
        except NotFound:
            raise Http404 from None
        except ApplicationError as exc:
            _form_error(form, exc)
            error = str(exc.message)
            status = exc.status_code
        else:
            if post.state == State.HELD:
                messages.info(
                    request, _("Your reply waits for a moderator's approval; until then only you and staff see it.")
                )
            return redirect(reverse("forum:post", args=[post.pk]))
    else:
        status = 400
    context = {"topic": topic, "form": form, "error": error, "viewer": viewer}
    return render(request, "forum/reply_failed.html", context, status=status)


@require_http_methods(["GET", "POST"])
def post_edit_page(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = viewer_of(request)
    post = _post_or_404(viewer, pk)
    if not access.may_edit(viewer, post):
        raise Http404
    writer = _writer(request)
    assert writer is not None and writer.member is not None

    def page(form: EditForm, status: int = 200) -> HttpResponse:
        return render(request, "forum/post_edit.html", {"post": post, "form": form, "viewer": viewer}, status=status)

    if request.method != "POST":
        return page(EditForm(initial={"title": post.topic.title, "body": post.body}))
    form = EditForm(request.POST)
    if not form.is_valid():
        return page(form, 400)
    title = form.cleaned_data["title"] if post.position == 1 else None
    try:
        post_edit(member=writer.member, post=post, body=form.cleaned_data["body"], title=title)
    except ApplicationError as exc:
        _form_error(form, exc)
        return page(form, exc.status_code)
    messages.success(request, _("Your changes were saved."))
    return redirect(reverse("forum:post", args=[post.pk]))


def _reaction(request: HttpRequest, pk: int, *, on_post: bool, act: Any) -> HttpResponse:
    """A reaction button's POST: 404 for what the viewer may not read, sign-in for a visitor, 400 for a
    malformed form, the service's refusal as a message; back to the topic."""
    viewer = viewer_of(request)
    target: Post | Topic = _post_or_404(viewer, pk) if on_post else _topic_or_404(viewer, pk)
    topic = target.topic if isinstance(target, Post) else target
    writer = _writer(request)
    if writer is None or writer.member is None:
        return _sign_in_first(request)
    form = ToggleForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("Choose an action."), status=400, content_type="text/plain; charset=utf-8")
    try:
        act(member=writer.member, target=target, on=form.cleaned_data["on"])
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
    anchor = f"#post-{target.position}" if isinstance(target, Post) else ""
    return redirect(topic_url(topic) + anchor)


@require_POST
def like(request: HttpRequest, pk: int) -> HttpResponse:
    return _reaction(
        request, pk, on_post=True, act=lambda member, target, on: post_like(member=member, post=target, on=on)
    )


@require_POST
def accept(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Member, target: Post, on: bool) -> bool:
        return post_accept(member=member, post=target) if on else post_unaccept(member=member, post=target)

    return _reaction(request, pk, on_post=True, act=act)


@require_http_methods(["GET", "POST"])
def flag(request: HttpRequest, pk: int) -> HttpResponse:
    """A reader's flag on a post: the form (GET, linked from each post), then the flag (POST). 404
    for what they may not read, sign-in for a visitor, 400 for a malformed form, a refusal as a
    message; back to the post."""
    viewer = viewer_of(request)
    post = _post_or_404(viewer, pk)
    if request.method == "GET":
        if not viewer.signed_in:
            return _sign_in_first(request)
        return render(request, "forum/flag.html", {"post": post, "form": FlagForm()})
    writer = _writer(request)
    if writer is None or writer.member is None:
        return _sign_in_first(request)
    form = FlagForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("Choose why you flag this post."), status=400, content_type="text/plain; charset=utf-8")
    try:
        flagged = post_flag(member=writer.member, post=post, **form.cleaned_data)
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
    else:
        if flagged:
            messages.success(request, _("Thank you: moderators will look at this post."))
        else:
            messages.info(request, _("You flagged this post already."))
    return redirect(topic_url(post.topic) + f"#post-{post.position}")


@require_POST
def vote(request: HttpRequest, pk: int) -> HttpResponse:
    return _reaction(
        request, pk, on_post=False, act=lambda member, target, on: topic_vote(member=member, topic=target, on=on)
    )


@require_POST
def me_too(request: HttpRequest, pk: int) -> HttpResponse:
    return _reaction(
        request, pk, on_post=False, act=lambda member, target, on: topic_me_too(member=member, topic=target, on=on)
    )


@require_POST
def topic_subscribe(request: HttpRequest, pk: int) -> HttpResponse:
    return _reaction(
        request, pk, on_post=False, act=lambda member, target, on: subscription_set(member=member, topic=target, on=on)
    )


@require_POST
def category_subscribe(request: HttpRequest, slug: str) -> HttpResponse:
    viewer = viewer_of(request)
    try:
        category = access.category_get_for(viewer, slug)
    except NotFound:
        raise Http404 from None
    writer = _writer(request)
    if writer is None or writer.member is None:
        return _sign_in_first(request)
    form = ToggleForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("Choose an action."), status=400, content_type="text/plain; charset=utf-8")
    subscription_set(member=writer.member, category=category, on=form.cleaned_data["on"])
    return redirect("forum:category", slug=category.slug)


@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    writer = _writer(request)
    if writer is None or writer.member is None:
        return _sign_in_first(request)
    member = writer.member
    form = ProfileForm(
        request.POST if request.method == "POST" else None, initial={"display_name": member.display_name}
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                member_profile_update(member=member, display_name=form.cleaned_data["display_name"])
            except ApplicationError as exc:
                _form_error(form, exc)
                status = 400
            else:
                messages.success(request, _("Your community profile was saved."))
                return redirect("forum:profile")
        else:
            status = 400
    return render(request, "forum/profile.html", {"form": form, "member": member, "viewer": writer}, status=status)


# ---------------------------------------------------------------- unsubscribing from a mail


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, key: str) -> HttpResponse:
    """The link of a notification mail. Opening it asks (mail scanners open links); its button, or a mail
    program's one-click POST (RFC 8058, no cookie and no CSRF token: the key is the credential), stops
    the subscription."""
    if request.method == "POST":
        subscription = subscription_unsubscribe(key=key)
    else:
        subscription = Subscription.objects.select_related("topic", "category").filter(key=key[:40]).first()
    if subscription is None:
        raise Http404
    target = subscription.topic.title if subscription.topic else subscription.category.label(_language())  # type: ignore[union-attr]
    context = {"target": target, "done": request.method == "POST", "is_topic": bool(subscription.topic_id)}
    return render(request, "forum/unsubscribe.html", context)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_mentions(request: HttpRequest, key: str) -> HttpResponse:
    """The link of a mention's mail: stops mail about mentions, the same way as ``unsubscribe``."""
    if request.method == "POST":
        member = member_mentions_mute(key=key)
    else:
        member = Member.objects.filter(mentions_key=key[:40]).first()
    if member is None:
        raise Http404
    return render(request, "forum/unsubscribe.html", {"target": "", "done": request.method == "POST", "mentions": True})


# ---------------------------------------------------------------- feeds and sitemap


@require_GET
def category_feed(request: HttpRequest, slug: str) -> HttpResponse:
    """The category's newest topics as Atom (index ``forum_topic_new``), for whoever reads the category."""
    viewer = viewer_of(request)
    try:
        category = access.category_get_for(viewer, slug)
    except NotFound:
        raise Http404 from None
    label = category.label(_language())
    feed = Atom1Feed(
        title=_("%(category)s: community") % {"category": label},
        link=_canonical(reverse("forum:category", args=[category.slug])),
        description=category.about(_language()),
        feed_url=_canonical(reverse("forum:feed", args=[category.slug])),
        language=get_language(),
    )
    topics = (
        access.topics_visible_to(viewer, own_unlisted=False)
        .filter(category=category, merged_into__isnull=True)
        .select_related("author")
        .order_by("-created_at", "-id")[:FEED_ENTRIES]
    )
    openings = {
        post.topic_id: post
        for post in Post.objects.filter(topic__in=[t.pk for t in topics], position=1, state=State.VISIBLE)
    }
    for topic in topics:
        opening = openings.get(topic.pk)
        feed.add_item(
            title=topic.title,
            link=_canonical(topic_url(topic)),
            description=opening.body_text[:1000] if opening else "",
            author_name=topic.author.display_name,
            pubdate=topic.created_at,
            updateddate=topic.last_post_at,
            unique_id=_canonical(f"/community/t/{topic.pk}/"),
            categories=[topic.get_kind_display()],
        )
    response = HttpResponse(content_type="application/atom+xml; charset=utf-8")
    feed.write(response, "utf-8")
    return response


def _sitemap_topics() -> Any:
    """The topics a visitor without a sign-in reads, oldest first (a page keeps its topics as new ones come)."""
    return (
        access.topics_visible_to(access.ANONYMOUS, own_unlisted=False).filter(merged_into__isnull=True).order_by("id")
    )


@require_GET
def sitemap(request: HttpRequest) -> HttpResponse:
    """A sitemap index: one sitemap of at most ``SITEMAP_URLS`` public topics per page (the protocol allows
    50,000), the first with the public categories. One count, whatever the number of topics."""
    pages = max(1, -(-_sitemap_topics().count() // SITEMAP_URLS))
    context = {"site": settings.SITE_URL, "numbers": range(1, pages + 1)}
    return render(request, "forum/sitemap_index.xml", context, content_type="application/xml; charset=utf-8")


@require_GET
def sitemap_page(request: HttpRequest, number: int) -> HttpResponse:
    """Page ``number`` of the sitemap; 404 past the last page."""
    if number < 1:
        raise Http404
    start = (number - 1) * SITEMAP_URLS
    topics = list(_sitemap_topics().only("pk", "slug", "last_post_at")[start : start + SITEMAP_URLS])
    if number > 1 and not topics:
        raise Http404
    categories = (
        list(access.categories_visible_to(access.ANONYMOUS).order_by("position", "name")) if number == 1 else []
    )
    context = {"categories": categories, "topics": topics, "site": settings.SITE_URL}
    return render(request, "forum/sitemap.xml", context, content_type="application/xml; charset=utf-8")
