"""Macros and canned replies (docs/macros.md).

Both have a scope: ``personal`` (its owner's), ``queue`` (the agents of one
queue) or ``global`` (every agent); a check constraint keeps the owner and
the queue consistent with it. A macro's actions are a JSON list, checked by
``actions.actions_clean`` before any save; a canned reply's text and its
translations are templates checked by ``templating.template_check``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Scope(models.TextChoices):
    PERSONAL = "personal", _("Personal (only me)")
    QUEUE = "queue", _("Queue (its agents)")
    GLOBAL = "global", _("Global (every agent)")


_SCOPE_CONSISTENT = (
    Q(scope=Scope.PERSONAL, owner__isnull=False, queue__isnull=True)
    | Q(scope=Scope.QUEUE, owner__isnull=True, queue__isnull=False)
    | Q(scope=Scope.GLOBAL, owner__isnull=True, queue__isnull=True)
)


class Scoped(models.Model):
    """Name and scope, shared by macros and canned replies."""

    name = models.CharField(_("name"), max_length=200)
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.PERSONAL)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("owner"),
    )
    queue = models.ForeignKey(
        "tickets.Queue", null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("queue")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"))
    updated_at = models.DateTimeField(_("updated"))

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class Macro(Scoped):
    # [{"type": "status", "status": "solved"}, {"type": "reply", "text": "...", "translations": {...}}, ...]
    actions = models.JSONField(_("actions"), default=list)

    class Meta:
        verbose_name = _("macro")
        verbose_name_plural = _("macros")
        constraints = [models.CheckConstraint(condition=_SCOPE_CONSISTENT, name="macros_macro_scope_consistent")]
        indexes = [
            models.Index(fields=["scope", "owner"], name="macros_macro_owner"),
            models.Index(fields=["scope", "queue"], name="macros_macro_queue"),
        ]


class CannedReply(Scoped):
    text = models.TextField(_("text"))
    # {"zh-hans": "..."}: the text in another language, used when the customer's language is that one.
    translations = models.JSONField(_("translations"), default=dict, blank=True)

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        constraints = [models.CheckConstraint(condition=_SCOPE_CONSISTENT, name="macros_canned_scope_consistent")]
        indexes = [
            models.Index(fields=["scope", "owner"], name="macros_canned_owner"),
            models.Index(fields=["scope", "queue"], name="macros_canned_queue"),
        ]


class MacroApplication(models.Model):
    """One macro application made under a caller's key: the API's ``Idempotency-Key`` or the
    ticket page form's ``submission_id`` (docs/macros.md#applying-once).

    The unique (user, key) pair decides between two requests sent at once: the
    second waits for the first and answers with what it did. Kept with the
    digest of the request first sent with the key and what that application
    answered (the ticket's version after it and each step), so a repeat gets
    the same answer and applies nothing. Written in the transaction of the
    application, so a refused macro leaves the key unused.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(_("key"), max_length=200)
    request_digest = models.CharField(_("request digest"), max_length=64)
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    macro = models.ForeignKey(Macro, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The ticket's version right after the macro, and its steps: [{"index", "kind", "before", "after", "text", "message"}].
    version = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=list)
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("macro application")
        verbose_name_plural = _("macro applications")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="macros_application_key_per_user")]
        # The oldest first, for macro_applications_prune.
        indexes = [models.Index(fields=["created_at"], name="macros_application_created")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
