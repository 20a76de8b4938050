"""The knowledge base's pages: the help centre's (``/help/kb/``) and the desk's editor (``/desk/kb/``)."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Prefetch, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.pagination import page_or_404
from servicedesk.core.ratelimit import rate_count
from servicedesk.tickets import access
from servicedesk.tickets.models import MessageKind

from .deflection import CHAT_KEY, SOURCES, session_key_of, suggest, suggested_opened
from .forms import ArticleForm, ImageForm, VoteForm
from .models import Article, ArticleImage, ArticleStatus, Category
from .search import QUERY_MAX, hit_json, kb_search
from .services import (
    ArticleInput,
    article_get_for,
    article_save,
    article_viewed,
    article_vote,
    articles_visible_to,
    translations_of,
)
from .sources import other_answers

DESK_PAGE_SIZE = 50


def _language() -> str:
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"


# ---------------------------------------------------------------- the help centre


HOME_PER_CATEGORY = 10
CATEGORY_PAGE_SIZE = 50


@require_GET
def kb_home(request: HttpRequest) -> HttpResponse:
    """Each category with its most read articles in the reader's language (those of the other language
    where it has none), and a link to all of them: a few statements, however many articles there are."""
    language = _language()
    visible = articles_visible_to(request.user)
    groups = []
    for category in [*Category.objects.all(), None]:
        in_category = visible.filter(category=category) if category else visible.filter(category__isnull=True)
        total = in_category.count()
        if not total:
            continue
        mine = list(in_category.filter(language=language).order_by("-views", "title")[:HOME_PER_CATEGORY])
        if not mine:
            mine = list(in_category.order_by("-views", "title")[:HOME_PER_CATEGORY])
        groups.append((category, category.label(language) if category else "", mine, total))
    return render(request, "kb/home.html", {"categories": groups, "language": language})


@require_GET
def kb_category(request: HttpRequest, slug: str) -> HttpResponse:
    category = Category.objects.filter(slug=slug).first()
    if category is None:
        raise Http404
    articles = articles_visible_to(request.user).filter(category=category).order_by("language", "title", "id")
    page = page_or_404(articles, CATEGORY_PAGE_SIZE, request.GET.get("page"))
    return render(
        request, "kb/category.html", {"category": category, "label": category.label(_language()), "page": page}
    )


@never_cache
@require_GET
def kb_article(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        article = article_get_for(request.user, pk)
    except NotFound:
        raise Http404 from None
    visible = articles_visible_to(request.user)
    article_viewed(article)
    if request.GET.get("suggested") and request.session.session_key:
        suggested_opened(key=request.session.session_key, article=article)
    elif request.GET.get("ds"):
        # Suggested in the chat widget on another site: the widget's key for the visitor's browser.
        key = str(request.GET["ds"])[:80]
        if CHAT_KEY.fullmatch(key):
            suggested_opened(key=key, article=article)
    context = {
        "article": article,
        "category_label": article.category.label(get_language()) if article.category else "",
        "translations": translations_of(article, visible),
        "related": list(article.related.filter(pk__in=visible.values("pk")).order_by("title")[:10]),
        "vote_form": VoteForm(),
        "voted": request.session.get(f"kb.voted.{article.pk}"),
    }
    return render(request, "kb/article.html", context)


SUGGEST_PER_MINUTE = 120
SUGGESTED_ANSWERS = 2


@never_cache
@require_GET
def kb_suggest(request: HttpRequest) -> JsonResponse:
    """The best three articles for what a customer is typing (the contact form's subject, the chat's
    first message), recorded per browser session for the deflection rate (``deflection.py``)."""
    query = (request.GET.get("q") or "").strip()
    if len(query) > QUERY_MAX:
        return JsonResponse({"q": [_("At most %(n)d characters.") % {"n": QUERY_MAX}]}, status=400)
    counted = rate_count(scope="kb-suggest", key=request.META.get("REMOTE_ADDR", "") or "unknown", window_seconds=60)
    if counted is not None and counted.attempts > SUGGEST_PER_MINUTE:
        response = JsonResponse({"detail": _("Too many requests, try again later.")}, status=429)
        response["Retry-After"] = str(counted.retry_after)
        return response
    if len(query) < 3:
        return JsonResponse({"articles": []})
    source = request.GET.get("source", "contact")
    hits = suggest(
        user=request.user,
        key=session_key_of(request.session),
        query=query,
        language=_language(),
        source=source if source in SOURCES else "contact",
    )
    articles = [{**hit_json(hit), "url": hit_json(hit)["url"] + "?suggested=1"} for hit in hits]
    # Answered questions from elsewhere (the community's), after the articles.
    answers = [
        {"title": other.title, "url": other.url, "source": other.source}
        for other in other_answers(request, query, limit=SUGGESTED_ANSWERS)
    ]
    return JsonResponse({"articles": articles, "answers": answers})


@require_POST
def kb_vote(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        article = article_get_for(request.user, pk)
    except NotFound:
        raise Http404 from None
    form = VoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose yes or no."))
        return redirect("kb:article", pk=article.pk)
    if not request.session.session_key:
        request.session.save()
    key = request.session.session_key or ""
    article_vote(
        article=article, helpful=form.cleaned_data["helpful"], reason=form.cleaned_data["reason"], session_key=key
    )
    request.session[f"kb.voted.{article.pk}"] = True
    messages.success(request, _("Thank you for your feedback."))
    return redirect("kb:article", pk=article.pk)


@require_GET
def kb_search_page(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()[:200]
    hits = kb_search(articles_visible_to(request.user), query, language=_language(), limit=20) if query else []
    others = other_answers(request, query, limit=10) if query else []
    return render(request, "kb/search.html", {"query": query, "hits": hits, "others": others})


@never_cache
@require_GET
def kb_image(request: HttpRequest, key: str) -> FileResponse:
    """An article's image, to whoever may read the article (agents: any article's)."""
    image = ArticleImage.objects.select_related("article").filter(key=key).first()
    if image is None:
        raise Http404
    readable = image.article_id is not None and articles_visible_to(request.user).filter(pk=image.article_id).exists()
    if not readable and not is_agent(request.user):
        raise Http404
    try:
        handle = image.file.open("rb")
    except OSError:
        raise Http404 from None
    response = FileResponse(handle, content_type=image.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# ---------------------------------------------------------------- the desk's editor


@require_GET
@agent_required
def desk_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    articles = Article.objects.select_related("category", "translation_of").order_by("-updated_at", "-id")
    if status in ArticleStatus.values:
        articles = articles.filter(status=status)
    query = (request.GET.get("q") or "").strip()
    if query:
        articles = articles.filter(Q(title__icontains=query) | Q(body__icontains=query))
    page = page_or_404(articles, DESK_PAGE_SIZE, request.GET.get("page"))
    return render(
        request,
        "kb/desk_list.html",
        {"page": page, "status": status, "query": query, "statuses": ArticleStatus.choices},
    )


def _editor(request: HttpRequest, article: Article | None, form: ArticleForm, *, status: int = 200) -> HttpResponse:
    images = list(article.images.order_by("-created_at")) if article is not None else []
    return render(
        request,
        "kb/desk_edit.html",
        {"article": article, "form": form, "image_form": ImageForm(), "images": images},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@agent_required
def desk_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    article = None
    if pk is not None:
        article = Article.objects.prefetch_related(Prefetch("related")).filter(pk=pk).first()
        if article is None:
            raise Http404
    if request.method != "POST":
        initial = {}
        if article is not None:
            initial = {
                "title": article.title,
                "body": article.body,
                "language": article.language,
                "status": article.status,
                "category": article.category_id,
                "translation_of": article.translation_of_id,
                "publish_at": article.publish_at,
                "related": list(article.related.values_list("pk", flat=True)),
            }
        return _editor(request, article, ArticleForm(initial=initial, article=article))
    form = ArticleForm(request.POST, article=article)
    if not form.is_valid():
        return _editor(request, article, form, status=400)
    try:
        saved = article_save(data=form.article_input(), author=signed_in_user(request), article=article)
    except ApplicationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc.message))
        return _editor(request, article, form, status=400)
    messages.success(request, _("The article was saved."))
    return redirect("kb_desk:edit", pk=saved.pk)


@require_POST
@agent_required
def desk_image(request: HttpRequest, pk: int) -> HttpResponse:
    article = Article.objects.filter(pk=pk).first()
    if article is None:
        raise Http404
    form = ImageForm(request.POST, request.FILES)
    if not form.is_valid():
        for error in form.errors.get("image", []):
            messages.error(request, str(error))
        return redirect("kb_desk:edit", pk=pk)
    upload = form.cleaned_data["image"]
    image = ArticleImage(
        article=article,
        filename=upload.name[:255],
        content_type=upload.sniffed_type,
        size=upload.size,
    )
    image.file.save(upload.name, upload, save=False)
    image.save()
    messages.success(request, _("The image was added: put its Markdown line where it belongs in the article."))
    return redirect("kb_desk:edit", pk=pk)


@require_POST
@agent_required
def desk_from_ticket(request: HttpRequest, reference: str, message_pk: int) -> HttpResponse:
    """A draft article from an agent's public answer on a ticket the agent may see."""
    agent = signed_in_user(request)
    try:
        ticket = access.ticket_get_for(agent, reference)
    except NotFound:
        raise Http404 from None
    answer = access.messages_visible_to(agent, ticket).filter(pk=message_pk, kind=MessageKind.PUBLIC_AGENT).first()
    if answer is None:
        raise Http404
    draft = article_save(
        data=ArticleInput(
            title=ticket.subject or _("Untitled"),
            body=answer.text,
            language="zh-hans" if (ticket.language or "").startswith("zh") else "en",
            status=ArticleStatus.DRAFT,
        ),
        author=agent,
    )
    Article.objects.filter(pk=draft.pk).update(source_ticket=ticket)
    messages.success(request, _("A draft article was made from the answer. Edit it and publish it when it is ready."))
    return redirect("kb_desk:edit", pk=draft.pk)
