"""Moderation of the community: trust levels, holds, flags and moderator actions (docs/community.md, "Moderation").

- **Screening** (``post_screen``), called by ``topic_create`` and ``post_create``
  before they write: a new member (trust level 0) over the link or mention
  limit is refused (400, on the text), over the hourly rate refused (429); a
  new member's first posts, and anyone's post with a word or a link domain
  of the hold lists, are written *held* for approval.
- **Flags** (``post_flag``): one per member and post (unique key); the
  configured number of flags, or one from staff, hides the post until a
  moderator reviews it.
- **Moderator actions**: one function each, for agents only; each writes its
  change and a ``ModerationAction`` (who, when, what, why) in one
  transaction. Asking for what is already so (locking a locked topic)
  changes nothing, records nothing and answers False.

The thresholds are settings (``SERVICEDESK["FORUM_..."]``, servicedesk/settings/base.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.text import clean_line
from servicedesk.tickets.locks import row_lock, rows_lock

from . import access
from .models import (
    Category,
    Flag,
    FlagKind,
    Member,
    ModerationAction,
    ModerationActionKind,
    Post,
    State,
    Topic,
)

REASON_MAX = 500
# Suspensions longer than this are refused as a typing mistake (about ten years).
SUSPEND_MAX_DAYS = 3650
_URL = re.compile(r"https?://[^\s<>()\[\]\"']+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_]{2,40})\b")
_CODE = re.compile(r"```.*?(```|\Z)|~~~.*?(~~~|\Z)|`[^`\n]*`", re.DOTALL)


class HoldReason:
    """Why a post waits for approval (``Post.hold_reason``)."""

    NEW_MEMBER = "new_member"
    WORD = "word"
    LINK = "link"


HOLD_LABELS = {
    HoldReason.NEW_MEMBER: gettext_lazy("A new member's first posts"),
    HoldReason.WORD: gettext_lazy("A word on the hold list"),
    HoldReason.LINK: gettext_lazy("A link to a domain on the hold list"),
}


class RateLimited(ApplicationError):
    """A new member wrote more posts in the last hour than the community allows."""

    status_code = 429


class ModerationRefused(ApplicationError):
    """The action does not apply (not an agent; a post in the wrong state; a topic into itself)."""

    status_code = 403


def config(name: str) -> Any:
    """One of the community's moderation settings, ``SERVICEDESK["FORUM_<name>"]``."""
    return settings.SERVICEDESK[f"FORUM_{name}"]


# ---------------------------------------------------------------- trust levels


def trust_level_for(member: Member, *, at: datetime) -> int:
    """The trust level ``member``'s activity earns at ``at``: 0 new, 1 basic, 2 member, 3 regular.

    Level n (1..3) needs ``FORUM_TRUST_POSTS[n-1]`` approved posts, ``FORUM_TRUST_DAYS[n-1]``
    days since joining and ``FORUM_TRUST_LIKES[n-1]`` likes received. Agents are not ranked (0).
    """
    if member.user_id is not None:
        return 0
    days = (at - member.created_at).total_seconds() / 86400
    level = 0
    for index, (posts, min_days, likes) in enumerate(
        zip(config("TRUST_POSTS"), config("TRUST_DAYS"), config("TRUST_LIKES"), strict=True)
    ):
        if member.posts_count >= posts and days >= min_days and member.likes_received >= likes:
            level = index + 1
    return level


def member_trust_update(*, member_id: int, at: datetime) -> int:
    """Raise a member's trust level to what their activity earns (never lowers it: a moderator's
    suspension is the answer to misbehaviour). Returns the level."""
    member = Member.objects.get(pk=member_id)
    earned = trust_level_for(member, at=at)
    if earned > member.trust_level:
        Member.objects.filter(pk=member_id, trust_level__lt=earned).update(trust_level=earned)
        return earned
    return member.trust_level


# ---------------------------------------------------------------- screening


def links_in(source: str) -> list[str]:
    """The web addresses a post's Markdown names (links and bare addresses), in order."""
    return _URL.findall(source or "")


def mentions_in(source: str) -> int:
    """How many different members the text mentions outside code (no cap, unlike notification)."""
    return len({handle.lower() for handle in _MENTION.findall(_CODE.sub(" ", source or ""))})


def _domain_held(url: str, domains: list[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def _word_held(text: str, words: list[str]) -> bool:
    lowered = text.lower()
    return any(re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", lowered) for word in words)


def _limits_check(member: Member, links: list[str], source: str) -> None:
    """A new member's limits on links and mentions in a post's text (``ApplicationError`` on ``body``)."""
    if member.trust_level >= 1:
        return
    if len(links) > config("NEW_MAX_LINKS"):
        raise ApplicationError(
            _("New members may add at most %(n)d links to a post. Remove some and post again.")
            % {"n": config("NEW_MAX_LINKS")},
            field="body",
        )
    if mentions_in(source) > config("NEW_MAX_MENTIONS"):
        raise ApplicationError(
            _("New members may mention at most %(n)d people in a post.") % {"n": config("NEW_MAX_MENTIONS")},
            field="body",
        )


def _rule_held(links: list[str], source: str, title: str) -> str:
    """The hold rule a post's text meets (a held word, a link to a held domain), or ""."""
    words = [word.lower() for word in config("HOLD_WORDS") if word]
    if words and _word_held(f"{title}\n{source}", words):
        return HoldReason.WORD
    domains = [domain.lower().strip(".") for domain in config("HOLD_DOMAINS") if domain]
    if domains and any(_domain_held(url, domains) for url in links):
        return HoldReason.LINK
    return ""


def post_screen(*, member: Member, is_staff: bool, source: str, title: str = "", at: datetime) -> str:
    """Check a post before it is written; the hold reason ("" when it is published at once).

    Call it with ``member``'s row locked (the hourly count is then exact). Staff are not screened.
    Errors: ``ApplicationError`` on the field ``body`` for a new member over the link or mention
    limit; ``RateLimited`` (429) for a new member over the hourly rate. Nothing is written.
    """
    if is_staff:
        return ""
    links = links_in(source)
    _limits_check(member, links, source)
    if member.trust_level < 1:
        recent = Post.objects.filter(author=member, created_at__gt=at - timedelta(hours=1)).count()
        if recent >= config("NEW_POSTS_PER_HOUR"):
            raise RateLimited(
                _("New members may write %(n)d posts an hour. Please wait a while and post again.")
                % {"n": config("NEW_POSTS_PER_HOUR")},
                field="body",
            )
    held = _rule_held(links, source, title)
    if held:
        return held
    if member.trust_level < 1 and member.posts_count < config("NEW_HELD_POSTS"):
        return HoldReason.NEW_MEMBER
    return ""


def edit_screen(*, member: Member, is_staff: bool, source: str, title: str = "") -> None:
    """Check an edit of a published post before it is written: the limits of a new post (links and
    mentions for a new member) and the hold rules. An edit is never held (the post is already
    published), so text a new post would be held for is refused instead, and the post keeps its text.

    Errors: ``ApplicationError`` on the field ``body``. Staff are not screened.
    """
    if is_staff:
        return
    links = links_in(source)
    _limits_check(member, links, source)
    if _rule_held(links, source, title):
        raise ApplicationError(
            _("Moderators review text like this before it is published: post it as a new reply instead."),
            field="body",
        )


# ---------------------------------------------------------------- records and checks


def _moderator(agent: User | None) -> User:
    if agent is None or not is_agent(agent):
        raise ModerationRefused(_("Only staff moderate the community."))
    return agent


def _reason(reason: str) -> str:
    return clean_line(reason or "", max_length=REASON_MAX).strip()


def _record(
    action: str,
    *,
    actor: User | None,
    at: datetime,
    topic: Topic | None = None,
    post: Post | None = None,
    member: Member | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> ModerationAction:
    return ModerationAction.objects.create(
        action=action,
        actor=actor,
        at=at,
        topic=topic,
        post=post,
        member=member,
        reason=reason,
        details=details or {},
    )


def hold_record(*, post: Post, reason: str, at: datetime) -> None:
    """The system's record of a post held by a rule (called by the writing services, in their transaction)."""
    _record(
        ModerationActionKind.HOLD,
        actor=None,
        at=at,
        topic=post.topic,
        post=post,
        member=post.author,
        reason=reason,
    )


def _flags_resolve(post: Post, *, by: User | None, resolution: str, at: datetime) -> int:
    return Flag.objects.filter(post=post, resolved_at__isnull=True).update(
        resolved_at=at, resolved_by=by, resolution=resolution
    )


def _visible_delta(topic: Topic, post: Post, delta: int, at: datetime | None = None) -> None:
    """Move the counters of visible posts when ``post`` (a reply) is shown (+1) or hidden (-1)."""
    changes: dict[str, Any] = {"posts_count": Greatest(F("posts_count") + delta, 0)}
    if delta > 0 and at is not None:
        changes["last_post_at"] = Greatest(F("last_post_at"), at)
    Topic.objects.filter(pk=topic.pk).update(**changes)
    if topic.state == State.VISIBLE and topic.merged_into_id is None:
        Category.objects.filter(pk=topic.category_id).update(posts_count=Greatest(F("posts_count") + delta, 0))


def _topic_visible_delta(topic: Topic, delta: int) -> None:
    """Move the category's counters when a whole topic (with its visible posts) is shown or hidden."""
    Category.objects.filter(pk=topic.category_id).update(
        topics_count=Greatest(F("topics_count") + delta, 0),
        posts_count=Greatest(F("posts_count") + delta * topic.posts_count, 0),
    )


# ---------------------------------------------------------------- held posts


def post_approve(*, agent: User, post: Post, reason: str = "", at: datetime | None = None) -> bool:
    """Publish a held post. An opening post publishes its topic: the category's and the author's
    counters follow, and a support question's escalation target starts now. A reply counts on its
    topic as if written now for the counters, keeping its time. Followers are mailed after commit.

    Idempotent: a post that is no longer held changes nothing (False). Errors: ``ModerationRefused``.
    """
    from .services import escalation_due, notify_after_commit

    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        topic = row_lock(Topic, post.topic_id)
        current = row_lock(Post, post.pk)
        if current.state != State.HELD:
            return False
        Post.objects.filter(pk=current.pk).update(state=State.VISIBLE, hold_reason="")
        author = Member.objects.get(pk=current.author_id)
        if current.position == 1 and topic.state == State.HELD:
            Topic.objects.filter(pk=topic.pk).update(
                state=State.VISIBLE,
                posts_count=F("posts_count") + 1,
                last_post_at=Greatest(F("last_post_at"), at),
                escalation_due_at=escalation_due(topic.category, topic.kind, at),
            )
            Category.objects.filter(pk=topic.category_id).update(
                topics_count=F("topics_count") + 1, posts_count=F("posts_count") + 1, last_post_at=at
            )
            Member.objects.filter(pk=author.pk).update(
                topics_count=F("topics_count") + 1, posts_count=F("posts_count") + 1
            )
        else:
            changes: dict[str, Any] = {
                "posts_count": F("posts_count") + 1,
                "last_post_at": Greatest(F("last_post_at"), at),
            }
            if topic.first_reply_at is None and author.pk != topic.author_id:
                changes["first_reply_at"] = at
            Topic.objects.filter(pk=topic.pk).update(**changes)
            if topic.state == State.VISIBLE:
                Category.objects.filter(pk=topic.category_id).update(posts_count=F("posts_count") + 1, last_post_at=at)
            Member.objects.filter(pk=author.pk).update(posts_count=F("posts_count") + 1)
        _record(
            ModerationActionKind.APPROVE,
            actor=agent,
            at=at,
            topic=topic,
            post=current,
            member=author,
            reason=_reason(reason),
        )
        member_trust_update(member_id=author.pk, at=at)
        current.topic = topic
        notify_after_commit(current)
    post.state = State.VISIBLE
    return True


def post_reject(*, agent: User, post: Post, reason: str = "", at: datetime | None = None) -> bool:
    """Refuse a held post: it is hidden (its author still sees it, marked hidden), and a held
    opening post hides its topic. Idempotent like ``post_approve``. Errors: ``ModerationRefused``."""
    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        topic = row_lock(Topic, post.topic_id)
        current = row_lock(Post, post.pk)
        if current.state != State.HELD:
            return False
        Post.objects.filter(pk=current.pk).update(state=State.HIDDEN)
        if current.position == 1 and topic.state == State.HELD:
            Topic.objects.filter(pk=topic.pk).update(state=State.HIDDEN, escalation_due_at=None)
        _record(
            ModerationActionKind.REJECT,
            actor=agent,
            at=at,
            topic=topic,
            post=current,
            member=Member.objects.get(pk=current.author_id),
            reason=_reason(reason),
        )
    post.state = State.HIDDEN
    return True


# ---------------------------------------------------------------- hiding


def _hide(post: Post, *, actor: User | None, reason: str, at: datetime, flags: str) -> bool:
    """Hide a visible post (an opening post hides its topic) and record it; in the caller's transaction,
    with the topic and the post locked. ``flags``: how its open flags are resolved."""
    topic = Topic.objects.get(pk=post.topic_id)
    if post.state != State.VISIBLE:
        return False
    Post.objects.filter(pk=post.pk).update(state=State.HIDDEN)
    if post.position == 1:
        if topic.state == State.VISIBLE:
            Topic.objects.filter(pk=topic.pk).update(state=State.HIDDEN, escalation_due_at=None)
            if topic.merged_into_id is None:
                _topic_visible_delta(topic, -1)
    else:
        _visible_delta(topic, post, -1)
    if flags:
        # A hide by flags leaves them open: the post waits in the queue for a moderator's review.
        _flags_resolve(post, by=actor, resolution=flags, at=at)
    _record(
        ModerationActionKind.HIDE,
        actor=actor,
        at=at,
        topic=topic,
        post=post,
        member=Member.objects.get(pk=post.author_id),
        reason=reason,
    )
    return True


def post_hide(*, agent: User, post: Post, reason: str = "", at: datetime | None = None) -> bool:
    """Hide a visible post until a moderator shows it again: others get 404 for it (for an opening
    post, for its whole topic) on every path; its open flags count as upheld. The counters of visible
    posts follow. Idempotent: a post not visible changes nothing (False). Errors: ``ModerationRefused``."""
    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        row_lock(Topic, post.topic_id)
        current = row_lock(Post, post.pk)
        changed = _hide(current, actor=agent, reason=_reason(reason), at=at, flags="upheld")
    if changed:
        post.state = State.HIDDEN
    return changed


def post_unhide(*, agent: User, post: Post, reason: str = "", at: datetime | None = None) -> bool:
    """Show a hidden post again (an opening post shows its topic); its open flags are dismissed.
    Idempotent: a post not hidden changes nothing (False). Errors: ``ModerationRefused``."""
    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        topic = row_lock(Topic, post.topic_id)
        current = row_lock(Post, post.pk)
        if current.state != State.HIDDEN:
            return False
        Post.objects.filter(pk=current.pk).update(state=State.VISIBLE, hold_reason="")
        if current.position == 1:
            if topic.state == State.HIDDEN:
                Topic.objects.filter(pk=topic.pk).update(state=State.VISIBLE)
                if topic.merged_into_id is None:
                    _topic_visible_delta(topic, +1)
        else:
            _visible_delta(topic, current, +1, at=current.created_at)
        _flags_resolve(current, by=agent, resolution="dismissed", at=at)
        _record(
            ModerationActionKind.UNHIDE,
            actor=agent,
            at=at,
            topic=topic,
            post=current,
            member=Member.objects.get(pk=current.author_id),
            reason=_reason(reason),
        )
    post.state = State.VISIBLE
    return True


def flags_dismiss(*, agent: User, post: Post, reason: str = "", at: datetime | None = None) -> int:
    """Dismiss a post's open flags (the post stays as it is); how many. Errors: ``ModerationRefused``."""
    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        current = row_lock(Post, post.pk)
        dismissed = _flags_resolve(current, by=agent, resolution="dismissed", at=at)
        if dismissed:
            _record(
                ModerationActionKind.FLAGS_DISMISS,
                actor=agent,
                at=at,
                topic=Topic.objects.get(pk=current.topic_id),
                post=current,
                member=Member.objects.get(pk=current.author_id),
                reason=_reason(reason),
                details={"flags": dismissed},
            )
    return dismissed


# ---------------------------------------------------------------- flags


def post_flag(*, member: Member, post: Post, kind: str, message: str = "", at: datetime | None = None) -> bool:
    """A reader reports a visible post. ``FORUM_FLAGS_TO_HIDE`` open flags (or one by staff) hide it
    until a moderator reviews it (recorded as the system's hide, or the agent's).

    Idempotent: one flag per member and post (unique key); False the second time, nothing changed.
    Errors: ``NotFound`` when the member may not read the post; ``ModerationRefused`` for their own
    post, a post that is not visible, or a suspended member; ``ApplicationError`` for an unknown kind.
    """
    viewer = access.viewer_of_member(member)
    if not viewer.signed_in or not access.can_read_post(viewer, post):
        raise NotFound(_("Post not found."))
    if kind not in FlagKind.values:
        raise ApplicationError(_("Choose why you flag this post."), field="kind")
    if post.author_id == member.pk:
        raise ModerationRefused(_("This is your own post."))
    if access.is_suspended(member) or post.state != State.VISIBLE:
        raise ModerationRefused(_("You cannot do that at the moment."))
    at = at or timezone.now()
    with transaction.atomic():
        row_lock(Topic, post.topic_id)
        current = row_lock(Post, post.pk)
        if current.state != State.VISIBLE:
            raise ModerationRefused(_("You cannot do that at the moment."))
        try:
            with transaction.atomic():
                Flag.objects.create(
                    post=current,
                    member=member,
                    kind=kind,
                    message=clean_line(message or "", max_length=REASON_MAX).strip(),
                    created_at=at,
                )
        except IntegrityError:
            return False
        Post.objects.filter(pk=current.pk).update(flags_count=F("flags_count") + 1)
        Member.objects.filter(pk=current.author_id).update(flags_received=F("flags_received") + 1)
        open_flags = Flag.objects.filter(post=current, resolved_at__isnull=True).count()
        if viewer.is_staff:
            _hide(current, actor=viewer.agent, reason=_("Flagged by staff"), at=at, flags="upheld")
        elif open_flags >= config("FLAGS_TO_HIDE"):
            _hide(current, actor=None, reason=_("Flagged by %(n)d members") % {"n": open_flags}, at=at, flags="")
    return True


# ---------------------------------------------------------------- topics


def _topic_flag_set(
    *, agent: User, topic: Topic, field: str, value: bool, on: str, off: str, reason: str, at: datetime | None
) -> bool:
    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        current = row_lock(Topic, topic.pk)
        if getattr(current, field) == value:
            return False
        Topic.objects.filter(pk=current.pk).update(**{field: value})
        _record(on if value else off, actor=agent, at=at, topic=current, reason=_reason(reason))
    setattr(topic, field, value)
    return True


def topic_lock_set(*, agent: User, topic: Topic, locked: bool, reason: str = "", at: datetime | None = None) -> bool:
    """Lock a topic (only staff reply) or unlock it. Idempotent (False when already so)."""
    return _topic_flag_set(
        agent=agent,
        topic=topic,
        field="locked",
        value=locked,
        on=ModerationActionKind.LOCK,
        off=ModerationActionKind.UNLOCK,
        reason=reason,
        at=at,
    )


def topic_pin_set(*, agent: User, topic: Topic, pinned: bool, reason: str = "", at: datetime | None = None) -> bool:
    """Pin a topic to the top of its category's list, or unpin it. Idempotent (False when already so)."""
    return _topic_flag_set(
        agent=agent,
        topic=topic,
        field="pinned",
        value=pinned,
        on=ModerationActionKind.PIN,
        off=ModerationActionKind.UNPIN,
        reason=reason,
        at=at,
    )


def topic_move(*, agent: User, topic: Topic, category: Category, reason: str = "", at: datetime | None = None) -> bool:
    """Move a topic to another category; both categories' counters follow. A question moved into a
    support category starts its escalation target now; moved out of one, it stops. Idempotent (False
    when it is there already). Errors: ``ModerationRefused`` for a merged topic."""
    from .services import escalation_due

    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        current = row_lock(Topic, topic.pk)
        if current.category_id == category.pk:
            return False
        if current.merged_into_id is not None:
            raise ModerationRefused(_("A merged topic cannot be moved."))
        source = Category.objects.get(pk=current.category_id)
        changes: dict[str, Any] = {"category": category}
        if current.escalated_at is None and current.first_staff_reply_at is None and current.answered_at is None:
            changes["escalation_due_at"] = (
                escalation_due(category, current.kind, at) if current.state == State.VISIBLE else None
            )
        Topic.objects.filter(pk=current.pk).update(**changes)
        if current.state == State.VISIBLE:
            _topic_visible_delta(current, -1)
            current.category_id = category.pk
            _topic_visible_delta(current, +1)
            Category.objects.filter(pk=category.pk).update(
                last_post_at=Greatest(F("last_post_at"), current.last_post_at)
            )
        _record(
            ModerationActionKind.MOVE,
            actor=agent,
            at=at,
            topic=current,
            reason=_reason(reason),
            details={"category": [source.pk, category.pk]},
        )
    topic.category = category
    return True


def topic_merge(*, agent: User, topic: Topic, into: Topic, reason: str = "", at: datetime | None = None) -> bool:
    """Merge ``topic`` into ``into``: its posts move to the end of ``into`` (keeping their order, the
    opening post becoming a reply), with their accepted answers and counters; ``topic`` points to
    ``into`` and its address redirects there. Both topics are locked in ascending id order.

    Idempotent: a topic already merged into ``into`` changes nothing (False). Errors:
    ``ModerationRefused`` for a topic into itself, into a merged topic, or a topic merged elsewhere.
    """
    _moderator(agent)
    if topic.pk == into.pk:
        raise ModerationRefused(_("A topic cannot be merged into itself."))
    at = at or timezone.now()
    with transaction.atomic():
        locked = {row.pk: row for row in rows_lock(Topic.objects.filter(pk__in=[topic.pk, into.pk]))}
        source, target = locked[topic.pk], locked[into.pk]
        if source.merged_into_id == target.pk:
            return False
        if source.merged_into_id is not None or target.merged_into_id is not None:
            raise ModerationRefused(_("This topic was merged already."))
        offset = target.last_position
        moved = Post.objects.filter(topic=source)
        visible = moved.filter(state=State.VISIBLE).count() if source.state == State.VISIBLE else 0
        accepted = moved.filter(accepted=True).count()
        total = moved.count()
        moved.update(topic=target, position=F("position") + offset)
        Topic.objects.filter(pk=source.pk).update(
            merged_into=target, posts_count=0, accepted_count=0, escalation_due_at=None
        )
        Topic.objects.filter(pk=target.pk).update(
            last_position=F("last_position") + source.last_position,
            posts_count=F("posts_count") + visible,
            accepted_count=F("accepted_count") + accepted,
            last_post_at=Greatest(F("last_post_at"), source.last_post_at),
        )
        if source.state == State.VISIBLE:
            _topic_visible_delta(source, -1)
        if target.state == State.VISIBLE:
            Category.objects.filter(pk=target.category_id).update(posts_count=F("posts_count") + visible)
        _record(
            ModerationActionKind.MERGE,
            actor=agent,
            at=at,
            topic=source,
            reason=_reason(reason),
            details={"into": target.pk, "posts": total},
        )
    topic.merged_into = into
    return True


# ---------------------------------------------------------------- members


def member_suspend(
    *, agent: User, member: Member, until: datetime, reason: str = "", at: datetime | None = None
) -> bool:
    """Suspend a member until ``until``: they read but write nothing (topics, replies, edits, reactions,
    flags) and are told why. Errors: ``ModerationRefused`` for an agent's profile or an instant not in the
    future (or beyond ``SUSPEND_MAX_DAYS``). Idempotent: the same end again changes nothing (False)."""
    _moderator(agent)
    at = at or timezone.now()
    if member.user_id is not None:
        raise ModerationRefused(_("Staff are not suspended here."))
    if until <= at or until > at + timedelta(days=SUSPEND_MAX_DAYS):
        raise ApplicationError(_("Choose when the suspension ends, in the future."), field="days")
    with transaction.atomic():
        current = row_lock(Member, member.pk)
        if current.suspended_until == until:
            return False
        Member.objects.filter(pk=current.pk).update(suspended_until=until)
        _record(
            ModerationActionKind.SUSPEND,
            actor=agent,
            at=at,
            member=current,
            reason=_reason(reason),
            details={"until": until.isoformat()},
        )
    member.suspended_until = until
    return True


def member_unsuspend(*, agent: User, member: Member, reason: str = "", at: datetime | None = None) -> bool:
    """Lift a member's suspension. Idempotent: a member not suspended changes nothing (False)."""
    _moderator(agent)
    at = at or timezone.now()
    with transaction.atomic():
        current = row_lock(Member, member.pk)
        if current.suspended_until is None or current.suspended_until <= at:
            return False
        Member.objects.filter(pk=current.pk).update(suspended_until=None)
        _record(ModerationActionKind.UNSUSPEND, actor=agent, at=at, member=current, reason=_reason(reason))
    member.suspended_until = None
    return True


# ---------------------------------------------------------------- the queue


def held_posts() -> QuerySet[Post]:
    """Posts waiting for approval, oldest first (index ``forum_post_held``)."""
    return (
        Post.objects.filter(state=State.HELD).select_related("topic__category", "author").order_by("created_at", "pk")
    )


def flagged_posts() -> QuerySet[Post]:
    """Posts with open flags, whatever their state (a post hidden by flags waits for review here)."""
    open_flags = Flag.objects.filter(resolved_at__isnull=True).values("post_id")  # index forum_flag_open
    return (
        Post.objects.filter(pk__in=open_flags)
        .select_related("topic__category", "author")
        .order_by("-flags_count", "pk")
    )


def actions_log() -> QuerySet[ModerationAction]:
    """Every moderation action, newest first (index ``forum_modaction_at``)."""
    return ModerationAction.objects.select_related("actor", "topic", "post", "member").order_by("-at", "-pk")
