"""The knowledge base: categories and articles in English and Simplified Chinese (docs/help-centre.md).

An article is one piece of content in one language; its translations point
at the original (``translation_of``), so "the same article" is the original
and its translations. Markdown is the source; the sanitised HTML and the
search document are derived from it when it is saved (``services``).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils.translation import gettext_lazy as _

LANGUAGES = (("en", "English"), ("zh-hans", "简体中文"))


class ArticleStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    INTERNAL = "internal", _("Internal (agents only)")
    PUBLISHED = "published", _("Published")
    ARCHIVED = "archived", _("Archived")


class Category(models.Model):
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    name = models.CharField(_("name"), max_length=200)
    name_zh_hans = models.CharField(_("name (Simplified Chinese)"), max_length=200, blank=True)
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def label(self, language: str | None) -> str:
        if language and language.lower().startswith("zh") and self.name_zh_hans:
            return self.name_zh_hans
        return self.name


class Article(models.Model):
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles", verbose_name=_("category")
    )
    language = models.CharField(_("language"), max_length=10, choices=LANGUAGES, default="en")
    translation_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="translations",
        verbose_name=_("translation of"),
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body (Markdown)"), blank=True)
    # Derived on save: the sanitised HTML, its plain text, and the text the search indexes.
    body_html = models.TextField(editable=False, blank=True)
    body_text = models.TextField(editable=False, blank=True)
    search_text = models.TextField(editable=False, blank=True)
    # PostgreSQL: to_tsvector('english', search_text), kept by a trigger on every write (migration 0004)
    # and indexed, so a search ranks stored vectors instead of parsing every matching article again.
    search_vector = SearchVectorField(null=True, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=ArticleStatus.choices, default=ArticleStatus.DRAFT)
    publish_at = models.DateTimeField(_("publish from"), null=True, blank=True)
    related = models.ManyToManyField("self", blank=True, symmetrical=True, verbose_name=_("related articles"))
    views = models.PositiveIntegerField(_("views"), default=0)
    helpful_yes = models.PositiveIntegerField(_("helpful"), default=0)
    helpful_no = models.PositiveIntegerField(_("not helpful"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"))
    updated_at = models.DateTimeField(_("updated"))
    # The ticket whose answer the draft was made from, if any.
    source_ticket = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("article")
        verbose_name_plural = _("articles")
        constraints = [
            models.UniqueConstraint(
                fields=["translation_of", "language"],
                condition=models.Q(translation_of__isnull=False),
                name="kb_one_translation_per_language",
            )
        ]
        indexes = [
            models.Index(fields=["status", "language", "-updated_at"], name="kb_article_status_lang"),
            models.Index(fields=["category", "status"], name="kb_article_category"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def original_id(self) -> int:
        return self.translation_of_id or self.pk


def _image_key() -> str:
    return secrets.token_urlsafe(16)


class ArticleImage(models.Model):
    """An image an article shows, stored like a ticket's attachments and served under ``/help/kb/images/``."""

    article = models.ForeignKey(Article, null=True, blank=True, on_delete=models.CASCADE, related_name="images")
    key = models.CharField(max_length=40, unique=True, default=_image_key)
    file = models.FileField(upload_to="kb/%Y/%m/")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("article image")
        verbose_name_plural = _("article images")

    def __str__(self) -> str:
        return self.filename


class ArticleVote(models.Model):
    """A reader's "was this helpful?", with an optional reason; one per browser session and article."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="votes")
    helpful = models.BooleanField()
    reason = models.CharField(max_length=500, blank=True)
    session_key = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["article", "session_key"], name="kb_vote_once")]
        indexes = [models.Index(fields=["at"], name="kb_vote_at")]

    def __str__(self) -> str:
        return f"{self.article_id}: {'yes' if self.helpful else 'no'}"


class SearchQuery(models.Model):
    """A search as typed, with how many published articles it found (the content gaps: none)."""

    term = models.CharField(max_length=200)
    language = models.CharField(max_length=10)
    results = models.PositiveIntegerField()
    source = models.CharField(max_length=20, default="search")
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["at"], name="kb_search_at"),
            models.Index(fields=["term", "at"], name="kb_search_term"),
        ]

    def __str__(self) -> str:
        return f"{self.term} ({self.results})"


class ArticleDailyViews(models.Model):
    """An article's page views per day (UTC), for the self-service figures of a period."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="daily_views")
    day = models.DateField()
    views = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["article", "day"], name="kb_daily_views_once")]
        indexes = [models.Index(fields=["day"], name="kb_daily_views_day")]

    def __str__(self) -> str:
        return f"{self.article_id} {self.day}: {self.views}"


class DeflectionKind(models.TextChoices):
    SHOWN = "shown", _("Suggestion shown")
    OPENED = "opened", _("Suggested article opened")
    SUBMITTED = "submitted", _("Request submitted")


class DeflectionEvent(models.Model):
    """What one browser session did with the articles suggested while it wrote a request (docs/metrics.md#deflection)."""

    session_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=DeflectionKind.choices)
    article = models.ForeignKey(Article, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10, default="contact")
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["session_key", "kind", "at"], name="kb_deflection_session"),
            models.Index(fields=["kind", "at"], name="kb_deflection_kind_at"),
        ]

    def __str__(self) -> str:
        return f"{self.session_key[:8]} {self.kind}"
