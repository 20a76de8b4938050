"""Knowledge-base articles: saving (Markdown to sanitised HTML, the search document), reading rules, votes.

Who reads what (``articles_visible_to``, the one rule for articles): anyone
reads published articles whose publish date has come; agents also read
internal ones; drafts and archived articles are for agents in the desk
only, never on the public pages, search or API.
"""

from __future__ import annotations

import html as html_module
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.markdown import markdown_html as core_markdown_html
from servicedesk.core.text import clean_line, clean_text

from .models import Article, ArticleDailyViews, ArticleStatus, ArticleVote, Category

TITLE_MAX = 200
BODY_MAX = 100_000
REASON_MAX = 500
IMAGE_PREFIX = "/help/kb/images/"


def markdown_html(source: str) -> str:
    """Markdown rendered and sanitised: no scripts, event handlers, iframes, ``javascript:`` links or remote images
    (images only from the knowledge base itself, uploaded with the article)."""
    return core_markdown_html(source, image_prefix=IMAGE_PREFIX)


# ---------------------------------------------------------------- the search document

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK}]+")


def search_terms(text: str) -> list[str]:
    """The words of ``text`` as the index holds them: lower-case words, and Chinese as overlapping
    character pairs (Chinese has no spaces: "打印机" is found by "打印" and "印机")."""
    terms: list[str] = []
    for token in _TOKEN.findall(text or ""):
        if _CJK_RUN.fullmatch(token):
            terms.extend([token] if len(token) == 1 else [token[i : i + 2] for i in range(len(token) - 1)])
        else:
            terms.append(token.lower())
    return terms


def _document(text: str) -> str:
    return " ".join(search_terms(text))


# ---------------------------------------------------------------- reading rules


def articles_visible_to(user: Any, *, now: datetime | None = None) -> QuerySet[Article]:
    """The articles ``user`` may read on the help centre's pages, its search and the API."""
    now = now or timezone.now()
    published = Q(status=ArticleStatus.PUBLISHED) & (Q(publish_at__isnull=True) | Q(publish_at__lte=now))
    if is_agent(user):
        return Article.objects.filter(published | Q(status=ArticleStatus.INTERNAL))
    return Article.objects.filter(published)


def article_get_for(user: Any, pk: int) -> Article:
    found = articles_visible_to(user).select_related("category").filter(pk=pk).first()
    if found is None:
        raise NotFound("Article not found.")
    return found


def translations_of(article: Article, visible: QuerySet[Article]) -> list[Article]:
    """The other language versions of ``article`` that the reader may see."""
    original = article.original_id
    return list(
        visible.filter(Q(pk=original) | Q(translation_of_id=original)).exclude(pk=article.pk).order_by("language")
    )


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class ArticleInput:
    title: str
    body: str
    language: str = "en"
    status: str = ArticleStatus.DRAFT
    category: Category | None = None
    translation_of: Article | None = None
    publish_at: datetime | None = None
    related: tuple[Article, ...] = ()


def _check(data: ArticleInput) -> tuple[str, str]:
    title = clean_line(data.title or "", max_length=TITLE_MAX + 1).strip()
    body = clean_text(data.body or "")
    if not title:
        raise ApplicationError(_("An article needs a title."), field="title")
    if len(title) > TITLE_MAX:
        raise ApplicationError(_("A title has at most %(n)d characters.") % {"n": TITLE_MAX}, field="title")
    if len(body) > BODY_MAX:
        raise ApplicationError(_("An article has at most %(n)d characters.") % {"n": BODY_MAX}, field="body")
    if data.language not in ("en", "zh-hans"):
        raise ApplicationError(_("Choose English or Simplified Chinese."), field="language")
    if data.status not in ArticleStatus.values:
        raise ApplicationError(_("Choose a status."), field="status")
    if data.translation_of is not None and data.translation_of.translation_of_id is not None:
        raise ApplicationError(_("A translation belongs to the original article."), field="translation_of")
    if data.translation_of is not None and data.translation_of.language == data.language:
        raise ApplicationError(_("A translation is in the other language."), field="language")
    return title, body


def article_text(html: str) -> str:
    """The article's text as read: tags gone and entities decoded ("&gt;" is ">"), for snippets and search."""
    return " ".join(html_module.unescape(strip_tags(html)).split())


def article_save(*, data: ArticleInput, author: User, article: Article | None = None) -> Article:
    """Create (``article`` None) or change an article; the HTML and search document follow the Markdown."""
    title, body = _check(data)
    now = timezone.now()
    html = markdown_html(body)
    text = article_text(html)
    target = article or Article(created_by=author, created_at=now)
    if article is not None and data.translation_of is not None and data.translation_of.pk == article.pk:
        raise ApplicationError(_("An article is not a translation of itself."), field="translation_of")
    target.title = title
    target.body = body
    target.body_html = html
    target.body_text = text
    target.search_text = _document(f"{title} {title} {text}")
    target.language = data.language
    target.status = data.status
    target.category = data.category
    target.translation_of = data.translation_of
    target.publish_at = data.publish_at
    target.updated_at = now
    try:
        with transaction.atomic():
            target.save()
            target.related.set([r for r in data.related if r.pk != target.pk])
    except IntegrityError:
        raise ApplicationError(
            _("That article already has a translation in this language."), field="language"
        ) from None
    return target


def article_viewed(article: Article, *, at: datetime | None = None) -> None:
    """Count a view: the article's total and its day's (UTC), without a lock."""
    day = (at or timezone.now()).astimezone(UTC).date()
    Article.objects.filter(pk=article.pk).update(views=F("views") + 1)
    if ArticleDailyViews.objects.filter(article=article, day=day).update(views=F("views") + 1):
        return
    try:
        with transaction.atomic():
            ArticleDailyViews.objects.create(article=article, day=day, views=1)
    except IntegrityError:
        # The day's row was made meanwhile by another view.
        ArticleDailyViews.objects.filter(article=article, day=day).update(views=F("views") + 1)


def article_vote(*, article: Article, helpful: bool, reason: str, session_key: str) -> bool:
    """A reader's "was this helpful?"; once per browser session and article (False when voted before)."""
    reason = clean_line(reason or "", max_length=REASON_MAX).strip()
    try:
        with transaction.atomic():
            ArticleVote.objects.create(
                article=article, helpful=helpful, reason=reason, session_key=session_key, at=timezone.now()
            )
    except IntegrityError:
        return False
    field = "helpful_yes" if helpful else "helpful_no"
    Article.objects.filter(pk=article.pk).update(**{field: F(field) + 1})
    return True
