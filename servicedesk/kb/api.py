"""The knowledge base's API: ``/api/v1/kb/articles/`` and ``/api/v1/kb/search/`` (docs/help-centre.md).

Anyone reads published articles; agents also read internal ones, and list,
create and edit every article (drafts and archived ones included). Who reads
what is ``services.articles_visible_to``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import SAFE_METHODS, AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError

from .models import LANGUAGES, Article, ArticleStatus, Category
from .search import QUERY_MAX, hit_json, kb_search
from .services import ArticleInput, article_save, articles_visible_to


class AgentsWrite(BasePermission):
    message = _("Only agents write articles.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or is_agent(request.user)


class ArticleSerializer(serializers.ModelSerializer):
    body = serializers.CharField(required=False, allow_blank=True, help_text=_("Markdown."))
    body_html = serializers.CharField(read_only=True, help_text=_("The Markdown rendered and sanitised."))
    language = serializers.ChoiceField(choices=LANGUAGES, default="en")
    status = serializers.ChoiceField(choices=ArticleStatus.choices, default=ArticleStatus.DRAFT)
    category = serializers.SlugRelatedField(
        slug_field="slug", queryset=Category.objects.all(), required=False, allow_null=True
    )
    translation_of = serializers.PrimaryKeyRelatedField(
        queryset=Article.objects.filter(translation_of__isnull=True), required=False, allow_null=True
    )
    related = serializers.PrimaryKeyRelatedField(queryset=Article.objects.all(), many=True, required=False)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Article
        fields = [
            "id",
            "title",
            "body",
            "body_html",
            "language",
            "status",
            "category",
            "translation_of",
            "publish_at",
            "related",
            "views",
            "helpful_yes",
            "helpful_no",
            "created_at",
            "updated_at",
            "url",
        ]
        read_only_fields = ["views", "helpful_yes", "helpful_no", "created_at", "updated_at"]
        # One translation per language is the service's to check (article_save), with the field's error.
        validators: list[Any] = []

    def get_url(self, article: Article) -> str:
        return f"/help/kb/articles/{article.pk}/"

    def to_representation(self, instance: Article) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and not is_agent(request.user):
            # Readers get the article, not its Markdown source or the desk's links.
            data.pop("body", None)
            data["related"] = [pk for pk in data["related"] if articles_visible_to(request.user).filter(pk=pk).exists()]
        return data

    def save(self, **kwargs: Any) -> Article:
        data = self.validated_data
        current = self.instance
        merged = {
            "title": data.get("title", current.title if current else ""),
            "body": data.get("body", current.body if current else ""),
            "language": data.get("language", current.language if current else "en"),
            "status": data.get("status", current.status if current else ArticleStatus.DRAFT),
            "category": data.get("category", current.category if current else None),
            "translation_of": data.get("translation_of", current.translation_of if current else None),
            "publish_at": data.get("publish_at", current.publish_at if current else None),
            "related": tuple(data.get("related", list(current.related.all()) if current else [])),
        }
        try:
            self.instance = article_save(
                data=ArticleInput(**merged), author=signed_in_user(self.context["request"]), article=current
            )
        except ApplicationError as exc:
            raise serializers.ValidationError({exc.field or "non_field_errors": [str(exc.message)]}) from None
        return self.instance


def _articles_for(request: Request) -> QuerySet[Article]:
    if is_agent(request.user):
        return Article.objects.all()
    return articles_visible_to(request.user)


class ArticleList(generics.ListCreateAPIView):
    """Published articles for anyone (internal ones too for agents, and every article for agents' lists)."""

    serializer_class = ArticleSerializer
    permission_classes = [AllowAny, AgentsWrite]

    def get_queryset(self) -> QuerySet[Article]:
        articles = _articles_for(self.request).select_related("category").prefetch_related("related")
        language = self.request.query_params.get("language")
        if language in ("en", "zh-hans"):
            articles = articles.filter(language=language)
        return articles.order_by("-updated_at", "-id")


class ArticleDetail(generics.RetrieveUpdateAPIView):
    serializer_class = ArticleSerializer
    permission_classes = [AllowAny, AgentsWrite]

    def get_queryset(self) -> QuerySet[Article]:
        return _articles_for(self.request).select_related("category").prefetch_related("related")


class HitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    language = serializers.CharField()
    url = serializers.CharField()
    title_html = serializers.CharField(help_text=_("The title, escaped, with the matches in <mark>."))
    snippet_html = serializers.CharField(help_text=_("A piece of the text, escaped, with the matches in <mark>."))


class SearchView(APIView):
    """Ranked matches among the articles the caller may read, with highlighted snippets."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="What to look for (English or Chinese)."),
            OpenApiParameter("limit", int, required=False, description="At most this many (1-20, default 10)."),
        ],
        responses={200: HitSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        query = (request.query_params.get("q") or "").strip()
        if not query:
            return Response({"q": [_("Say what to look for.")]}, status=status.HTTP_400_BAD_REQUEST)
        if len(query) > QUERY_MAX:
            return Response(
                {"q": [_("At most %(n)d characters.") % {"n": QUERY_MAX}]}, status=status.HTTP_400_BAD_REQUEST
            )
        try:
            limit = min(20, max(1, int(request.query_params.get("limit", 10))))
        except ValueError:
            return Response({"limit": [_("A whole number from 1 to 20.")]}, status=status.HTTP_400_BAD_REQUEST)
        language = "zh-hans" if (get_language() or "").startswith("zh") else "en"
        hits = kb_search(articles_visible_to(request.user), query, language=language, limit=limit, record="api")
        return Response([hit_json(hit) for hit in hits])
