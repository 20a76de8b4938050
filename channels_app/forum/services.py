"""Every change to the community forum: one function per change (docs/community.md).

Each service takes keyword arguments, checks who acts with the access rules
(``access.py``) and refuses with an ``ApplicationError`` subclass before it
writes anything; it writes in one transaction, and starts its side effects
(notification mail) only after that transaction commits. Reactions (votes,
likes, "me too", subscriptions) are idempotent through their unique keys:
asking twice changes nothing the second time and says so.
"""

from __future__ import annotations

import html as html_module
import logging
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Greatest, Lower
from django.utils import timezone, translation
from django.utils.html import strip_tags
from django.utils.text import slugify
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.mail_templates import mail_render
from servicedesk.core.markdown import markdown_html
from servicedesk.core.text import clean_line, clean_text, header_safe
from servicedesk.sla.calendars import always_open, due_instant
from servicedesk.sla.models import BusinessCalendar
from servicedesk.sla.policies import calendar_spec_cached
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.locks import row_lock
from servicedesk.tickets.models import Customer, Identity, IdentityKind, Message
from servicedesk.tickets.services.attachments import attachments_check, stored_files_remove

from . import access
from .models import (
    Category,
    ForumAttachment,
    Kind,
    Like,
    Member,
    MeToo,
    Notice,
    NoticeReason,
    Post,
    PostRevision,
    State,
    Subscription,
    Topic,
    Vote,
)

log = logging.getLogger(__name__)

TITLE_MIN = 5
TITLE_MAX = 200
BODY_MAX = 50_000
DISPLAY_NAME_MAX = 80
# Members a post may notify by mentioning them; more names are left as text.
MENTIONS_MAX = 10
# Where a post's images come from: files uploaded to the forum (``ForumAttachment``).
IMAGE_PREFIX = "/community/attachments/"

_HANDLE_CHARS = re.compile(r"[^a-z0-9_]+")
# "@handle" not inside a word or an address (name@example.com mentions nobody).
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_]{2,40})\b")
_CODE = re.compile(r"```.*?(```|\Z)|~~~.*?(~~~|\Z)|`[^`\n]*`", re.DOTALL)


class ForumRefused(ApplicationError):
    """The viewer may read the object but may not make this change (a locked topic, not its author...)."""

    status_code = 403


# ---------------------------------------------------------------- text


def post_html(source: str) -> str:
    """A post's Markdown as sanitised HTML (``core/markdown.py``), images only from forum uploads."""
    return markdown_html(source, image_prefix=IMAGE_PREFIX)


def html_text(html: str) -> str:
    """The text of sanitised HTML as read ("&gt;" is ">"): snippets, feeds, structured data, search."""
    return " ".join(html_module.unescape(strip_tags(html)).split())


def mentioned_handles(source: str) -> list[str]:
    """The handles ``source`` mentions outside code, lower-cased, in order, each once (at most ``MENTIONS_MAX``)."""
    seen: list[str] = []
    for handle in MENTION.findall(_CODE.sub(" ", source or "")):
        lowered = handle.lower()
        if lowered not in seen:
            seen.append(lowered)
    return seen[:MENTIONS_MAX]


def topic_slug(title: str) -> str:
    """The ASCII words of a title for its address; "topic" when it has none (a title in Chinese)."""
    return slugify(title)[:80].strip("-") or "topic"


def _title_check(title: str) -> str:
    cleaned = clean_line(title or "", max_length=TITLE_MAX + 1).strip()
    if len(cleaned) < TITLE_MIN:
        raise ApplicationError(_("A title has at least %(n)d characters.") % {"n": TITLE_MIN}, field="title")
    if len(cleaned) > TITLE_MAX:
        raise ApplicationError(_("A title has at most %(n)d characters.") % {"n": TITLE_MAX}, field="title")
    return cleaned


def post_source(body: str) -> str:
    """A post's Markdown as it is stored (``_body_check``'s first value), to compare with what was written."""
    return _body_check(body)[0]


def _body_check(body: str) -> tuple[str, str, str]:
    """The cleaned Markdown, its HTML and its text; refuses an empty or oversized post."""
    cleaned = clean_text(body or "").strip()
    if len(cleaned) > BODY_MAX:
        raise ApplicationError(_("A post has at most %(n)d characters.") % {"n": BODY_MAX}, field="body")
    rendered = post_html(cleaned)
    text = html_text(rendered)
    if not text and "<img" not in rendered:
        raise ApplicationError(_("Write something first."), field="body")
    return cleaned, rendered, text


# ---------------------------------------------------------------- members


def _handle_base(name: str) -> str:
    base = _HANDLE_CHARS.sub("_", slugify(name).replace("-", "_").lower()).strip("_")[:30]
    return base if len(base) >= 2 else "member"


def member_ensure(*, customer: Customer | None = None, user: User | None = None) -> Member:
    """The forum profile of ``customer`` or of agent ``user`` (exactly one), made on first use.

    Idempotent: the unique customer (or user) decides between two first uses
    at once, and the loser reads the winner's row. A new profile gets a
    handle from the name (a number added when it is taken) and, for a
    customer, their first name as display name (the full name stays private).
    """
    if (customer is None) == (user is None):
        raise ValueError("member_ensure takes a customer or a user")
    lookup = {"customer": customer} if customer is not None else {"user": user}
    found = Member.objects.filter(**lookup).first()
    if found is not None:
        return found
    if customer is not None:
        name = (customer.name or "").split()
        display = name[0] if name else ""
    else:
        assert user is not None
        display = getattr(user, "display_name", "") or user.get_username()
    base = _handle_base(display)
    for attempt in range(8):
        handle = base if attempt == 0 else f"{base}{secrets.randbelow(10_000)}"
        try:
            with transaction.atomic():
                return Member.objects.create(
                    **lookup,
                    handle=handle,
                    display_name=clean_line(display, max_length=DISPLAY_NAME_MAX) or handle,
                    created_at=timezone.now(),
                )
        except IntegrityError:
            found = Member.objects.filter(**lookup).first()
            if found is not None:
                return found
    raise ApplicationError(_("Could not choose a handle; try again."))


def member_profile_update(*, member: Member, display_name: str) -> Member:
    """Change the name shown beside the member's posts; refuses an empty or over-long name."""
    cleaned = clean_line(display_name or "", max_length=DISPLAY_NAME_MAX + 1).strip()
    if not cleaned:
        raise ApplicationError(_("Enter the name to show beside your posts."), field="display_name")
    if len(cleaned) > DISPLAY_NAME_MAX:
        raise ApplicationError(
            _("A name has at most %(n)d characters.") % {"n": DISPLAY_NAME_MAX}, field="display_name"
        )
    Member.objects.filter(pk=member.pk).update(display_name=cleaned)
    member.display_name = cleaned
    return member


def _acting(member: Member) -> access.Viewer:
    viewer = access.viewer_of_member(member)
    if not viewer.signed_in:
        raise NotFound(_("Not found."))
    return viewer


# ---------------------------------------------------------------- topics and posts


def escalation_due(category: Category, kind: str, start: datetime) -> datetime | None:
    """When an unanswered question of a support category escalates: the category's target in business
    hours on its calendar (the default calendar, or around the clock when there is none)."""
    if not category.is_support or kind != Kind.QUESTION:
        return None
    calendar = category.calendar or BusinessCalendar.objects.filter(is_default=True).first()
    spec = calendar_spec_cached(calendar) if calendar is not None else always_open()
    try:
        return due_instant(spec, start, category.target_hours * 3600)
    except ValueError:
        log.warning("Calendar of forum category %s is never open: its questions do not escalate", category.slug)
        return None


def _suspended_check(member: Member) -> None:
    if access.is_suspended(member):
        until = timezone.localtime(member.suspended_until).strftime("%Y-%m-%d %H:%M")
        raise ForumRefused(
            _("Your community account is suspended until %(until)s: you can read, but not write.") % {"until": until}
        )


def topic_create(
    *,
    member: Member,
    category: Category,
    kind: str,
    title: str,
    body: str,
    at: datetime | None = None,
    files: Sequence[InboundAttachment] = (),
) -> Topic:
    """Open a topic: its opening post (position 1), the counters of its category and author, and the
    author's subscription to it, in one transaction; subscribers of the category and mentioned members
    are notified after commit.

    The post is screened first (``moderation.post_screen``): a topic held for approval (a new
    member's first posts, a held word or link) is written in state ``held``, counted nowhere and
    notified to nobody until a moderator approves it; its escalation target starts then.

    Errors: ``NotFound`` when the member may not read the category; ``ForumRefused`` when they may read
    but not write there (suspended; an announcement by a customer); ``ApplicationError`` on the field
    for a bad title, body or kind, or a new member over the link or mention limit; ``RateLimited``
    (429) for a new member over the hourly rate; ``AttachmentRejected`` on the field ``attachments`` for a
    file the help centre's limits refuse (``files``: the opening post's attachments, checked as every
    upload is, before anything is written). Not idempotent: each call opens a topic (the form's
    page reloads to the topic, so a second submit needs a second click).
    """

    from .moderation import hold_record, member_trust_update, post_screen

    viewer = _acting(member)
    if not access.can_read_category(viewer, category):
        raise NotFound(_("Category not found."))
    if kind not in Kind.values:
        raise ApplicationError(_("Choose what kind of topic this is."), field="kind")
    _suspended_check(member)
    if not access.may_write_in(viewer, category, kind=kind):
        if kind == Kind.ANNOUNCEMENT:
            raise ApplicationError(_("Only staff post announcements."), field="kind")
        raise ForumRefused(_("You cannot post here at the moment."))
    cleaned_title = _title_check(title)
    source, rendered, text = _body_check(body)
    uploads = attachments_check(list(files), field="attachments") if files else []
    now = at or timezone.now()
    with _stored_files() as saved, transaction.atomic():
        writer = row_lock(Member, member.pk)
        hold = post_screen(member=writer, is_staff=viewer.is_staff, source=source, title=cleaned_title, at=now)
        held = bool(hold)
        state = State.HELD if held else State.VISIBLE
        topic = Topic.objects.create(
            category=category,
            kind=kind,
            title=cleaned_title,
            slug=topic_slug(cleaned_title),
            author=member,
            customer_id=member.customer_id,
            state=state,
            posts_count=0 if held else 1,
            last_position=1,
            created_at=now,
            last_post_at=now,
            escalation_due_at=None if held or viewer.is_staff else escalation_due(category, kind, now),
        )
        post = Post.objects.create(
            topic=topic,
            position=1,
            author=member,
            is_staff=viewer.is_staff,
            body=source,
            body_html=rendered,
            body_text=text,
            state=state,
            hold_reason=hold,
            created_at=now,
        )
        _files_store(post, member, uploads, now, saved)
        if held:
            Member.objects.filter(pk=member.pk).update(last_posted_at=now)
            hold_record(post=post, reason=hold, at=now)
        else:
            Category.objects.filter(pk=category.pk).update(
                topics_count=F("topics_count") + 1, posts_count=F("posts_count") + 1, last_post_at=now
            )
            Member.objects.filter(pk=member.pk).update(
                topics_count=F("topics_count") + 1, posts_count=F("posts_count") + 1, last_posted_at=now
            )
            member_trust_update(member_id=member.pk, at=now)
        Subscription.objects.create(member=member, topic=topic, created_at=now)
        if not held:
            notify_after_commit(post)
    return topic


def post_create(
    *,
    member: Member,
    topic: Topic,
    body: str,
    at: datetime | None = None,
    on_ticket: bool = True,
    source_message: Message | None = None,
    files: Sequence[InboundAttachment] = (),
) -> Post:
    """Reply to ``topic``: the post takes the next position under the topic's row lock; the topic's
    counters and first-reply times, its category's and the author's counters follow in the same
    transaction, and the author follows the topic (unless they unsubscribed from it before). A staff
    reply stops the question's escalation. Followers and mentioned members are notified after commit.

    Screened like ``topic_create``: a held reply takes its position but counts nowhere until approved.
    On a topic escalated to a ticket, a staff reply is recorded on the ticket after commit as the
    agent's public message (its first reply for the SLA: ``escalation.staff_reply_record``), unless
    ``on_ticket`` is False (the desk's own notices, replies posted back from the ticket).
    ``source_message``: the ticket message this reply posts back (unique: a second is IntegrityError).

    Errors: ``NotFound`` when the member may not read the topic; ``ForumRefused`` when it is locked,
    held, hidden or merged, or the member is suspended; ``ApplicationError`` for an empty or oversized
    body, or a new member over the limits; ``RateLimited`` (429); ``AttachmentRejected`` on ``attachments``
    (the reply's attachments, checked before anything is written). Not idempotent: each call is a reply.
    """

    from .moderation import hold_record, member_trust_update, post_screen

    viewer = _acting(member)
    if not access.can_read_topic(viewer, topic):
        raise NotFound(_("Topic not found."))
    _suspended_check(member)
    source, rendered, text = _body_check(body)
    uploads = attachments_check(list(files), field="attachments") if files else []
    now = at or timezone.now()
    with _stored_files() as saved, transaction.atomic():
        # The topic, then its writer (moderation and escalation lock in the same order).
        locked = row_lock(Topic, topic.pk)
        writer = row_lock(Member, member.pk)
        locked.category = topic.category
        if not access.may_reply(viewer, locked):
            raise ForumRefused(_("This topic takes no more replies."))
        hold = post_screen(member=writer, is_staff=viewer.is_staff, source=source, at=now)
        held = bool(hold)
        position = locked.last_position + 1
        post = Post.objects.create(
            topic=locked,
            position=position,
            author=member,
            is_staff=viewer.is_staff,
            body=source,
            body_html=rendered,
            body_text=text,
            state=State.HELD if held else State.VISIBLE,
            hold_reason=hold,
            created_at=now,
            source_message=source_message,
        )
        _files_store(post, member, uploads, now, saved)
        if held:
            Topic.objects.filter(pk=locked.pk).update(last_position=position)
            Member.objects.filter(pk=member.pk).update(last_posted_at=now)
            hold_record(post=post, reason=hold, at=now)
        else:
            changes: dict[str, object] = {
                "posts_count": F("posts_count") + 1,
                "last_position": position,
                "last_post_at": now,
            }
            if locked.first_reply_at is None and member.pk != locked.author_id:
                changes["first_reply_at"] = now
            if viewer.is_staff and locked.first_staff_reply_at is None:
                changes["first_staff_reply_at"] = now
            if viewer.is_staff and locked.escalated_at is None:
                changes["escalation_due_at"] = None
            Topic.objects.filter(pk=locked.pk).update(**changes)
            Category.objects.filter(pk=locked.category_id).update(posts_count=F("posts_count") + 1, last_post_at=now)
            Member.objects.filter(pk=member.pk).update(posts_count=F("posts_count") + 1, last_posted_at=now)
            member_trust_update(member_id=member.pk, at=now)
        Subscription.objects.bulk_create(
            [Subscription(member=member, topic=locked, created_at=now)], ignore_conflicts=True
        )
        if not held:
            notify_after_commit(post)
            if viewer.is_staff and on_ticket and locked.escalated_ticket_id is not None:
                _staff_reply_after_commit(post)
    post.topic = topic
    return post


@contextmanager
def _stored_files() -> Iterator[list[str]]:
    """The storage names of the files a block writes (``_files_store``); removed when the block fails,
    after its transaction has rolled back."""
    saved: list[str] = []
    try:
        yield saved
    except BaseException:
        stored_files_remove(saved)
        raise


def _files_store(post: Post, member: Member, uploads: list[InboundAttachment], now: datetime, saved: list[str]) -> None:
    """Write the post's checked files under their keys; ``saved`` collects the stored names, removed
    by the caller if the transaction does not commit."""
    for upload in uploads:
        attachment = ForumAttachment(
            post=post,
            member=member,
            filename=upload.filename,
            content_type=upload.content_type,
            size=len(upload.content),
            created_at=now,
        )
        attachment.file.save(attachment.key, ContentFile(upload.content), save=False)
        saved.append(attachment.file.name)
        attachment.save(force_insert=True)


def _staff_reply_after_commit(post: Post) -> None:
    from .tasks import staff_reply_record_task

    post_id = post.pk
    transaction.on_commit(lambda: task_enqueue(staff_reply_record_task, post_id))


def post_edit(*, member: Member, post: Post, body: str, title: str | None = None) -> Post:
    """Change a post's text (and, for an opening post, its topic's title), keeping what it was as a
    ``PostRevision`` numbered from 1. Its author and agents edit.

    Idempotent on content: the same text (and title) again writes nothing and keeps no revision.
    Errors: ``NotFound`` when the member may not read the post; ``ForumRefused`` when they may not
    edit it; ``ApplicationError`` on the field for a bad body or title.
    """
    from .moderation import edit_screen

    viewer = _acting(member)
    if not access.can_read_post(viewer, post):
        raise NotFound(_("Post not found."))
    if not access.may_edit(viewer, post):
        raise ForumRefused(_("Only the author and staff edit a post."))
    source, rendered, text = _body_check(body)
    new_title = _title_check(title) if title is not None and post.position == 1 else None
    now = timezone.now()
    with transaction.atomic():
        current = row_lock(Post, post.pk)
        topic = post.topic
        title_changes = new_title is not None and new_title != topic.title
        if current.body == source and not title_changes:
            return post
        writer = row_lock(Member, member.pk)
        edit_screen(member=writer, is_staff=viewer.is_staff, source=source, title=new_title or "")
        # Members the edit mentions for the first time hear of it (those mentioned before did).
        if set(mentioned_handles(source)) - set(mentioned_handles(current.body)):
            notify_after_commit(current, mentions_only=True)
        number = current.revisions_count + 1
        PostRevision.objects.create(
            post=current,
            number=number,
            title=topic.title if title_changes else "",
            body=current.body,
            editor=member,
            at=now,
        )
        Post.objects.filter(pk=current.pk).update(
            body=source, body_html=rendered, body_text=text, edited_at=now, revisions_count=number
        )
        if title_changes and new_title is not None:
            Topic.objects.filter(pk=topic.pk).update(title=new_title, slug=topic_slug(new_title))
            topic.title, topic.slug = new_title, topic_slug(new_title)
    post.body, post.body_html, post.body_text = source, rendered, text
    post.edited_at, post.revisions_count = now, number
    return post


# ---------------------------------------------------------------- answers


def _answer_check(viewer: access.Viewer, post: Post) -> None:
    if not access.can_read_post(viewer, post):
        raise NotFound(_("Post not found."))
    if not access.may_accept(viewer, post.topic):
        raise ForumRefused(_("The question's author and staff accept answers."))
    if post.position == 1 or post.state != State.VISIBLE:
        raise ForumRefused(_("Only a visible reply can be an answer."))


def post_accept(*, member: Member, post: Post) -> bool:
    """Mark a reply to a question as an accepted answer (a question may have several); the topic counts
    it, is answered from its first acceptance on, and stops escalating.

    Idempotent: one ``UPDATE ... WHERE accepted = false`` decides, so accepting twice counts once
    (False the second time). Errors: ``NotFound``; ``ForumRefused`` for anyone but the question's
    author and agents, for the opening post, and for a held or hidden reply.
    """
    viewer = _acting(member)
    _answer_check(viewer, post)
    now = timezone.now()
    with transaction.atomic():
        if not Post.objects.filter(pk=post.pk, accepted=False, state=State.VISIBLE).update(
            accepted=True, accepted_by=member, accepted_at=now
        ):
            return False
        Topic.objects.filter(pk=post.topic_id).update(
            accepted_count=F("accepted_count") + 1,
            answered_at=Case(When(answered_at__isnull=True, then=now), default=F("answered_at")),
            escalation_due_at=Case(When(escalated_at__isnull=True, then=None), default=F("escalation_due_at")),
        )
        Member.objects.filter(pk=post.author_id).update(accepted_count=F("accepted_count") + 1)
    post.accepted, post.accepted_by, post.accepted_at = True, member, now
    return True


def post_unaccept(*, member: Member, post: Post) -> bool:
    """Take back an accepted answer; the topic is no longer answered when it was its last one.

    Idempotent like ``post_accept`` (False when it was not accepted). Same errors.
    """
    viewer = _acting(member)
    _answer_check(viewer, post)
    with transaction.atomic():
        if not Post.objects.filter(pk=post.pk, accepted=True).update(
            accepted=False, accepted_by=None, accepted_at=None
        ):
            return False
        Topic.objects.filter(pk=post.topic_id).update(
            accepted_count=Greatest(F("accepted_count") - 1, 0),
            answered_at=Case(When(accepted_count__lte=1, then=None), default=F("answered_at")),
        )
        Member.objects.filter(pk=post.author_id).update(accepted_count=Greatest(F("accepted_count") - 1, 0))
    post.accepted, post.accepted_by, post.accepted_at = False, None, None
    return True


# ---------------------------------------------------------------- reactions


def _react_check(viewer: access.Viewer, topic: Topic) -> None:
    if not access.can_read_topic(viewer, topic):
        raise NotFound(_("Topic not found."))
    if access.is_suspended(viewer.member) or topic.state != State.VISIBLE:
        raise ForumRefused(_("You cannot do that at the moment."))


def _toggle(row: Vote | MeToo | Like, *, on: bool) -> bool:
    """Insert ``row`` (on) or delete its twin (off); True when that changed something.

    The unique key decides: of two inserts at once one fails and changes nothing.
    """
    model = type(row)
    target = {"post_id": row.post_id} if isinstance(row, Like) else {"topic_id": row.topic_id}
    if on:
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:
            return False
        return True
    deleted, _rows = model.objects.filter(member_id=row.member_id, **target).delete()
    return bool(deleted)


def topic_vote(*, member: Member, topic: Topic, on: bool = True) -> bool:
    """Vote for an idea (``on``) or take the vote back; the topic's ``votes_count`` follows.

    Idempotent: one vote per member and idea (unique key); True only when the vote changed.
    Errors: ``NotFound``; ``ForumRefused`` for a topic that is not an idea or not visible, or a
    suspended member.
    """
    viewer = _acting(member)
    _react_check(viewer, topic)
    if topic.kind != Kind.IDEA:
        raise ForumRefused(_("Only ideas take votes."))
    with transaction.atomic():
        changed = _toggle(Vote(topic=topic, member=member, at=timezone.now()), on=on)
        if changed:
            delta = 1 if on else -1
            Topic.objects.filter(pk=topic.pk).update(votes_count=Greatest(F("votes_count") + delta, 0))
    return changed


def topic_me_too(*, member: Member, topic: Topic, on: bool = True) -> bool:
    """ "I have this question too" (``on``) or take it back; the topic's ``me_too_count`` follows.

    Idempotent like ``topic_vote``. Errors: ``NotFound``; ``ForumRefused`` for a topic that is not a
    question, for its own author, for a topic that is not visible, or a suspended member.
    """
    viewer = _acting(member)
    _react_check(viewer, topic)
    if topic.kind != Kind.QUESTION:
        raise ForumRefused(_("Only questions can be shared."))
    if topic.author_id == member.pk:
        raise ForumRefused(_("This is your own question."))
    with transaction.atomic():
        changed = _toggle(MeToo(topic=topic, member=member, at=timezone.now()), on=on)
        if changed:
            delta = 1 if on else -1
            Topic.objects.filter(pk=topic.pk).update(me_too_count=Greatest(F("me_too_count") + delta, 0))
    return changed


def post_like(*, member: Member, post: Post, on: bool = True) -> bool:
    """Like a post (``on``) or take the like back; the post's and its topic's ``likes_count`` and its
    author's ``likes_received`` follow.

    Idempotent like ``topic_vote``. Errors: ``NotFound`` when the member may not read the post;
    ``ForumRefused`` for their own post, a post that is not visible, or a suspended member.
    """
    viewer = _acting(member)
    if not access.can_read_post(viewer, post):
        raise NotFound(_("Post not found."))
    _react_check(viewer, post.topic)
    if post.state != State.VISIBLE:
        raise ForumRefused(_("You cannot do that at the moment."))
    if post.author_id == member.pk:
        raise ForumRefused(_("This is your own post."))
    with transaction.atomic():
        changed = _toggle(Like(post=post, member=member, at=timezone.now()), on=on)
        if changed:
            delta = 1 if on else -1
            Post.objects.filter(pk=post.pk).update(likes_count=Greatest(F("likes_count") + delta, 0))
            Topic.objects.filter(pk=post.topic_id).update(likes_count=Greatest(F("likes_count") + delta, 0))
            Member.objects.filter(pk=post.author_id).update(likes_received=Greatest(F("likes_received") + delta, 0))
    return changed


# ---------------------------------------------------------------- subscriptions


def subscription_set(
    *, member: Member, topic: Topic | None = None, category: Category | None = None, on: bool = True
) -> Subscription | None:
    """Follow a topic or a category by mail (``on``) or stop; the row stays when stopping, so a later
    reply does not follow the topic again unasked. Returns the subscription (None when stopping one
    that never was).

    Idempotent: the unique (member, topic) or (member, category) key decides; following again keeps
    the row and its unsubscribe key. Errors: ``NotFound`` when the member may not read the target.
    """
    if (topic is None) == (category is None):
        raise ValueError("subscription_set takes a topic or a category")
    viewer = _acting(member)
    readable = access.can_read_topic(viewer, topic) if topic is not None else access.can_read_category(viewer, category)  # type: ignore[arg-type]
    if not readable:
        raise NotFound(_("Not found."))
    target = {"topic": topic} if topic is not None else {"category": category}
    now = timezone.now()
    with transaction.atomic():
        if on:
            Subscription.objects.bulk_create(
                [Subscription(member=member, created_at=now, **target)], ignore_conflicts=True
            )
            Subscription.objects.filter(member=member, **target).update(unsubscribed_at=None)
        else:
            Subscription.objects.filter(member=member, unsubscribed_at__isnull=True, **target).update(
                unsubscribed_at=now
            )
    return Subscription.objects.filter(member=member, **target).first()


def subscription_unsubscribe(*, key: str) -> Subscription | None:
    """Stop the subscription whose unsubscribe link carries ``key`` (the mail's one-click link, RFC 8058).

    Idempotent: a second use finds it stopped and changes nothing. None for an unknown key.
    """
    if not key or len(key) > 40:
        return None
    Subscription.objects.filter(key=key, unsubscribed_at__isnull=True).update(unsubscribed_at=timezone.now())
    return Subscription.objects.select_related("topic", "category").filter(key=key).first()


def member_mentions_mute(*, key: str) -> Member | None:
    """Stop the mail a member gets when mentioned (the link in such a mail); idempotent; None for an unknown key."""
    if not key or len(key) > 40:
        return None
    Member.objects.filter(mentions_key=key).update(mention_mails=False)
    return Member.objects.filter(mentions_key=key).first()


# ---------------------------------------------------------------- notifications


def notify_after_commit(post: Post, *, mentions_only: bool = False) -> None:
    """Mail the post's followers and mentioned members once the transaction commits (``post_notify``);
    ``mentions_only``: only the members it mentions (an edit that mentions someone new)."""
    from .tasks import post_notify_task

    post_id = post.pk
    if mentions_only:
        transaction.on_commit(lambda: task_enqueue(post_notify_task, post_id, True))
    else:
        transaction.on_commit(lambda: task_enqueue(post_notify_task, post_id))


def address_of(member: Member) -> str:
    """The address a member is mailed at: an agent's, or their customer record's first email that does not bounce."""
    if member.customer_id is None:
        return member.user.email if member.user is not None else ""
    identity = (
        Identity.objects.filter(customer_id=member.customer_id, kind=IdentityKind.EMAIL, is_bouncing=False)
        .order_by("pk")
        .first()
    )
    return identity.value if identity is not None else ""


def _recipients(post: Post, *, mentions_only: bool = False) -> dict[int, tuple[Member, str, Subscription | None]]:
    """Who hears of ``post``: mentioned members first (the reason their mail names), then the followers
    of its topic and of its category (not with ``mentions_only``); never its author. Member id ->
    (member, reason, subscription)."""
    topic = post.topic
    found: dict[int, tuple[Member, str, Subscription | None]] = {}
    handles = mentioned_handles(post.body)
    if handles:
        mentioned = (
            Member.objects.annotate(lowered=Lower("handle"))
            .filter(lowered__in=handles, mention_mails=True)
            .select_related("customer", "user")
        )
        for member in mentioned:
            found[member.pk] = (member, NoticeReason.MENTION, None)
    if mentions_only:
        found.pop(post.author_id, None)
        return found
    follows = (
        Subscription.objects.filter(
            Q(topic_id=topic.pk) | Q(category_id=topic.category_id), unsubscribed_at__isnull=True
        )
        .select_related("member__customer", "member__user")
        .order_by("topic_id", "pk")
    )
    for subscription in follows:
        reason = NoticeReason.TOPIC if subscription.topic_id else NoticeReason.CATEGORY
        if subscription.member_id not in found:
            found[subscription.member_id] = (subscription.member, reason, subscription)
    found.pop(post.author_id, None)
    return found


def post_notify(*, post_id: int, mentions_only: bool = False) -> int:
    """Mail the post's followers and the members it mentions who may read it; how many mails left.

    Each (post, member) is claimed by inserting its ``Notice`` first, so a task that runs twice mails
    nobody twice (at most once: a mail that fails after its claim is logged, not retried). A post that
    is no longer visible notifies nobody. Each mail carries its one-click unsubscribe
    (``List-Unsubscribe`` and ``List-Unsubscribe-Post``, RFC 8058).
    """
    post = Post.objects.select_related("topic__category", "author").filter(pk=post_id).first()
    if post is None or post.state != State.VISIBLE or post.topic.state != State.VISIBLE:
        return 0
    sent = 0
    for member, reason, subscription in _recipients(post, mentions_only=mentions_only).values():
        viewer = access.viewer_of_member(member)
        if not access.can_read_post(viewer, post):
            continue
        address = address_of(member)
        if not address:
            continue
        try:
            with transaction.atomic():
                notice = Notice.objects.create(
                    post=post, member=member, reason=reason, subscription=subscription, created_at=timezone.now()
                )
        except IntegrityError:
            continue
        try:
            _notice_send(post=post, member=member, reason=reason, subscription=subscription, address=address)
        except Exception:
            log.warning("Forum notice %s to member %s not sent", post.pk, member.pk, exc_info=True)
            continue
        Notice.objects.filter(pk=notice.pk).update(sent_at=timezone.now())
        sent += 1
    return sent


def topic_url(topic: Topic) -> str:
    """The topic's canonical path."""
    return f"/community/t/{topic.pk}-{topic.slug}/"


def _notice_send(*, post: Post, member: Member, reason: str, subscription: Subscription | None, address: str) -> None:
    topic = post.topic
    if subscription is not None:
        unsubscribe = f"{settings.SITE_URL}/community/unsubscribe/{subscription.key}/"
    else:
        unsubscribe = f"{settings.SITE_URL}/community/unsubscribe/m/{member.mentions_key}/"
    language = "en"
    if member.customer is not None and member.customer.language:
        language = member.customer.language
    with translation.override(language):
        context = {
            "member_name": member.display_name,
            "author_name": post.author.display_name,
            "is_staff": post.is_staff,
            "topic_title": topic.title,
            "category_name": topic.category.label(language),
            "reason": reason,
            "text": post.body_text,
            "link": f"{settings.SITE_URL}/community/p/{post.pk}/",
            "unsubscribe": unsubscribe,
        }
        subject = header_safe(mail_render("forum/notice_subject.txt", context).strip())
        body = mail_render("forum/notice_mail.txt", context).strip() + "\n"
    message = EmailMessage(
        subject,
        body,
        None,
        [address],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )
    message.send()
