"""The community forum's records (docs/community.md).

A *member* is the forum profile of one customer or one agent: the name shown
beside their posts, the handle others mention, trust level and counters. A
*topic* is a question, idea, discussion or announcement in a *category*; its
first *post* (position 1) is the question itself, the replies follow in
position order. Counters (posts, likes, votes, "me too", accepted answers)
are kept on the rows the pages list, so a list or a topic page never counts.

Everything a moderator or the escalation to tickets needs is here from the
start: states (visible, held for approval, hidden), lock and pin, merges,
flags, the moderation log, and the link from a topic to the ticket it became.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


def _key() -> str:
    return secrets.token_urlsafe(24)


class Visibility(models.TextChoices):
    PUBLIC = "public", _("Everyone")
    SIGNED_IN = "signed_in", _("Signed-in customers")
    ORGANIZATION = "organization", _("One organization")


class Category(models.Model):
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    name = models.CharField(_("name"), max_length=200)
    name_zh_hans = models.CharField(_("name (Simplified Chinese)"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True)
    description_zh_hans = models.TextField(_("description (Simplified Chinese)"), blank=True)
    visibility = models.CharField(
        _("who reads it"), max_length=12, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    organization = models.ForeignKey(
        "tickets.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("organization"),
    )
    # A support category's unanswered questions become tickets after the target (docs/community.md).
    is_support = models.BooleanField(_("support category"), default=False)
    target_hours = models.PositiveSmallIntegerField(_("target for a first staff reply (business hours)"), default=24)
    # None: the default business calendar, or around the clock when there is none.
    calendar = models.ForeignKey(
        "sla.BusinessCalendar",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("business calendar"),
    )
    # Tickets escalated from this category open in this queue (None: the default queue).
    queue = models.ForeignKey(
        "tickets.Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("queue")
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    topics_count = models.PositiveIntegerField(default=0, editable=False)
    posts_count = models.PositiveIntegerField(default=0, editable=False)
    last_post_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("forum category")
        verbose_name_plural = _("forum categories")
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(visibility="organization", organization__isnull=False)
                | (~Q(visibility="organization") & Q(organization__isnull=True)),
                name="forum_category_organization_iff_visibility",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def label(self, language: str | None) -> str:
        if language and language.lower().startswith("zh") and self.name_zh_hans:
            return self.name_zh_hans
        return self.name

    def about(self, language: str | None) -> str:
        if language and language.lower().startswith("zh") and self.description_zh_hans:
            return self.description_zh_hans
        return self.description


class Member(models.Model):
    """The forum profile of one customer or one agent (exactly one of the two)."""

    customer = models.OneToOneField(
        "tickets.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="forum_member"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="forum_member"
    )
    # What others type after "@" to mention the member; unique without regard to case.
    handle = models.CharField(_("handle"), max_length=40)
    display_name = models.CharField(_("display name"), max_length=80)
    # 0 new .. 4 leader; raised by activity (docs/community.md, "Trust levels").
    trust_level = models.PositiveSmallIntegerField(_("trust level"), default=0)
    topics_count = models.PositiveIntegerField(default=0)
    posts_count = models.PositiveIntegerField(default=0)
    likes_received = models.PositiveIntegerField(default=0)
    accepted_count = models.PositiveIntegerField(default=0)
    flags_received = models.PositiveIntegerField(default=0)
    suspended_until = models.DateTimeField(_("suspended until"), null=True, blank=True)
    # Mail when someone mentions the member; ``mentions_key`` is that mail's one-click unsubscribe secret.
    mention_mails = models.BooleanField(_("mail me when I am mentioned"), default=True)
    mentions_key = models.CharField(max_length=40, unique=True, default=_key)
    last_posted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("joined"))

    class Meta:
        verbose_name = _("forum member")
        verbose_name_plural = _("forum members")
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False, user__isnull=True) | Q(customer__isnull=True, user__isnull=False),
                name="forum_member_customer_xor_user",
            ),
            models.UniqueConstraint(Lower("handle"), name="forum_member_handle_unique"),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_staff_member(self) -> bool:
        """An agent's profile (whether the agent still works in the desk is the access rules' question)."""
        return self.user_id is not None


class Kind(models.TextChoices):
    QUESTION = "question", _("Question")
    IDEA = "idea", _("Idea")
    DISCUSSION = "discussion", _("Discussion")
    ANNOUNCEMENT = "announcement", _("Announcement")


class State(models.TextChoices):
    VISIBLE = "visible", _("Visible")
    HELD = "held", _("Held for approval")
    HIDDEN = "hidden", _("Hidden")


class Topic(models.Model):
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="topics")
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices, default=Kind.QUESTION)
    title = models.CharField(_("title"), max_length=200)
    slug = models.SlugField(max_length=80)
    author = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="topics")
    # The author's customer record (None for an agent's topic): the topic is part of the customer's history.
    customer = models.ForeignKey(
        "tickets.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="forum_topics"
    )
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.VISIBLE)
    locked = models.BooleanField(_("locked"), default=False)
    pinned = models.BooleanField(_("pinned"), default=False)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    # Counters of visible posts and reactions, kept by the services.
    posts_count = models.PositiveIntegerField(default=0)
    # The last position handed out (held and hidden posts keep theirs), under the topic's row lock.
    last_position = models.PositiveIntegerField(default=0)
    likes_count = models.PositiveIntegerField(default=0)
    votes_count = models.PositiveIntegerField(default=0)
    me_too_count = models.PositiveIntegerField(default=0)
    accepted_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(_("created"))
    last_post_at = models.DateTimeField()
    # The first reply by anyone but the author, the first by staff, and the first accepted answer.
    first_reply_at = models.DateTimeField(null=True, blank=True)
    first_staff_reply_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    # A question in a support category escalates at this instant unless staff replied or an answer was
    # accepted first (the category's target in business hours on its calendar).
    escalation_due_at = models.DateTimeField(null=True, blank=True)
    escalated_ticket = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="forum_topics"
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    # The author was asked to accept an answer (once, seven days after the first reply).
    accept_reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("forum topic")
        verbose_name_plural = _("forum topics")
        indexes = [
            # A category's list: pinned first, then latest activity (views.category_page), of the topics
            # not merged away: its count and its deep pages read the index alone.
            models.Index(
                "category",
                "state",
                models.F("pinned").desc(),
                models.F("last_post_at").desc(),
                models.F("id").desc(),
                condition=Q(merged_into__isnull=True),
                name="forum_topic_list",
            ),
            models.Index(
                "category",
                "state",
                "kind",
                models.F("pinned").desc(),
                models.F("last_post_at").desc(),
                models.F("id").desc(),
                condition=Q(merged_into__isnull=True),
                name="forum_topic_list_kind",
            ),
            # Staff read every state: the same order without it.
            models.Index(
                "category",
                models.F("pinned").desc(),
                models.F("last_post_at").desc(),
                models.F("id").desc(),
                condition=Q(merged_into__isnull=True),
                name="forum_topic_staff_list",
            ),
            # The category's feed (newest topics) and the reports' topics of a period.
            models.Index("category", "state", models.F("created_at").desc(), name="forum_topic_new"),
            models.Index(fields=["state", "created_at"], name="forum_topic_created"),
            models.Index(fields=["author", "-created_at"], name="forum_topic_author"),
            models.Index(fields=["customer", "-created_at"], name="forum_topic_customer"),
            # Questions waiting for their escalation (a beat task's one query).
            models.Index(
                fields=["escalation_due_at"],
                condition=Q(escalation_due_at__isnull=False, escalated_at__isnull=True),
                name="forum_topic_escalation_due",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Post(models.Model):
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="posts")
    # 1 is the topic's opening post; replies follow in the order they were written.
    position = models.PositiveIntegerField()
    author = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="posts")
    # Written by an agent: shown with the staff badge, and counts as staff's reply.
    is_staff = models.BooleanField(default=False)
    body = models.TextField(_("text (Markdown)"))
    # Derived from the Markdown when written: sanitised HTML, and its text for snippets, feeds and search.
    body_html = models.TextField(editable=False)
    body_text = models.TextField(editable=False, blank=True)
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.VISIBLE)
    # Why the post waits for approval (moderation.HoldReason), for the moderation queue.
    hold_reason = models.CharField(max_length=20, blank=True)
    accepted = models.BooleanField(default=False)
    accepted_by = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    likes_count = models.PositiveIntegerField(default=0)
    flags_count = models.PositiveIntegerField(default=0)
    revisions_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True, blank=True)
    # An agent's public reply on the escalated ticket posted back here: once per message (unique).
    source_message = models.OneToOneField(
        "tickets.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="forum_post"
    )
    # This post alone was escalated to a private ticket.
    escalated_ticket = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="forum_posts"
    )

    class Meta:
        verbose_name = _("forum post")
        verbose_name_plural = _("forum posts")
        constraints = [models.UniqueConstraint(fields=["topic", "position"], name="forum_post_position_unique")]
        indexes = [
            # A topic page's replies and its accepted answers.
            models.Index(fields=["topic", "state", "position"], name="forum_post_topic"),
            # A signed-in member reads "visible, or mine": the positions of a topic in order, with
            # what that test needs, from the index alone (views.topic_page).
            models.Index(fields=["topic", "position"], include=["state", "author"], name="forum_post_reading"),
            models.Index(fields=["topic"], condition=Q(accepted=True), name="forum_post_accepted"),
            models.Index(fields=["author", "-created_at"], name="forum_post_author"),
            # The moderation queue: held posts, oldest first.
            models.Index(fields=["created_at"], condition=Q(state="held"), name="forum_post_held"),
        ]

    def __str__(self) -> str:
        return f"{self.topic_id}#{self.position}"


class PostRevision(models.Model):
    """A post as it was before an edit (the title too, for an opening post)."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    editor = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "number"], name="forum_revision_number_unique")]

    def __str__(self) -> str:
        return f"{self.post_id} r{self.number}"


class Vote(models.Model):
    """A member's vote for an idea."""

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="votes")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "topic"], name="forum_vote_once")]

    def __str__(self) -> str:
        return f"{self.member_id} -> {self.topic_id}"


class MeToo(models.Model):
    """ "I have this question too"."""

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="me_toos")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "topic"], name="forum_me_too_once")]

    def __str__(self) -> str:
        return f"{self.member_id} -> {self.topic_id}"


class Like(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "post"], name="forum_like_once")]

    def __str__(self) -> str:
        return f"{self.member_id} -> {self.post_id}"


class Subscription(models.Model):
    """A member follows a topic or a category by mail; ``key`` is the one-click unsubscribe link's secret."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="subscriptions")
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions")
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    key = models.CharField(max_length=40, unique=True, default=_key)
    created_at = models.DateTimeField()
    # Kept after unsubscribing, so replying again does not subscribe a member who said no.
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(topic__isnull=False, category__isnull=True) | Q(topic__isnull=True, category__isnull=False),
                name="forum_subscription_topic_xor_category",
            ),
            models.UniqueConstraint(
                fields=["member", "topic"], condition=Q(topic__isnull=False), name="forum_subscription_topic_once"
            ),
            models.UniqueConstraint(
                fields=["member", "category"],
                condition=Q(category__isnull=False),
                name="forum_subscription_category_once",
            ),
        ]
        indexes = [
            models.Index(fields=["topic"], condition=Q(unsubscribed_at__isnull=True), name="forum_sub_topic"),
            models.Index(fields=["category"], condition=Q(unsubscribed_at__isnull=True), name="forum_sub_category"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} -> {self.topic_id or self.category_id}"


class NoticeReason(models.TextChoices):
    TOPIC = "topic", _("A topic you follow")
    CATEGORY = "category", _("A category you follow")
    MENTION = "mention", _("You were mentioned")


class Notice(models.Model):
    """One mail about one post to one member: the unique key makes a retried task send it at most once."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=10, choices=NoticeReason.choices)
    subscription = models.ForeignKey(Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "member"], name="forum_notice_once")]

    def __str__(self) -> str:
        return f"{self.post_id} -> {self.member_id}"


class FlagKind(models.TextChoices):
    OFF_TOPIC = "off_topic", _("Off topic")
    INAPPROPRIATE = "inappropriate", _("Inappropriate")
    # A context: "Spam" alone is the desk's ticket view, translated for that.
    SPAM = "spam", pgettext_lazy("forum flag", "Spam")
    ILLEGAL = "illegal", _("Illegal")
    OTHER = "other", _("Something else")


class Flag(models.Model):
    """A reader's report of a post, until a moderator reviews it."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="flags")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=14, choices=FlagKind.choices)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "upheld" (the post was hidden or removed) or "dismissed".
    resolution = models.CharField(max_length=10, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "post"], name="forum_flag_once")]
        indexes = [models.Index(fields=["created_at"], condition=Q(resolved_at__isnull=True), name="forum_flag_open")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.post_id}"


class ModerationActionKind(models.TextChoices):
    APPROVE = "approve", _("Approved")
    REJECT = "reject", _("Rejected")
    # By the system (no actor): a new member's first posts, a word or a link domain on the hold list.
    HOLD = "hold", _("Held for approval")
    HIDE = "hide", _("Hidden")
    UNHIDE = "unhide", _("Shown again")
    LOCK = "lock", _("Locked")
    UNLOCK = "unlock", _("Unlocked")
    PIN = "pin", _("Pinned")
    UNPIN = "unpin", _("Unpinned")
    MOVE = "move", _("Moved")
    MERGE = "merge", _("Merged")
    SUSPEND = "suspend", _("Member suspended")
    UNSUSPEND = "unsuspend", _("Suspension lifted")
    FLAGS_DISMISS = "flags_dismiss", _("Flags dismissed")
    ESCALATE = "escalate", _("Escalated to a ticket")


class ModerationAction(models.Model):
    """Every moderator action: who (None: the system, e.g. a hold by a rule or enough flags), when, on what, why."""

    action = models.CharField(max_length=14, choices=ModerationActionKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    post = models.ForeignKey(Post, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    # What changed, e.g. {"category": [3, 5]} for a move.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-at"], name="forum_modaction_at"),
            models.Index(fields=["topic", "-at"], name="forum_modaction_topic"),
            models.Index(fields=["member", "-at"], name="forum_modaction_member"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.at:%Y-%m-%d %H:%M}"


class ForumAttachment(models.Model):
    """A file a member uploaded for a post (images shown in it); served only with its topic."""

    post = models.ForeignKey(Post, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=40, unique=True, default=_key)
    file = models.FileField(upload_to="forum/%Y/%m/")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("forum attachment")
        verbose_name_plural = _("forum attachments")

    def __str__(self) -> str:
        return self.filename
