"""The community's API, ``/api/v1/community/...`` (docs/community.md), by the pages' rules.

- ``categories/``: the categories the caller reads.
- ``topics/``: GET the topics the caller reads (``?category=<slug>``, ``?kind=``), latest
  activity first, each with its accepted answer and that answer's page address; POST
  ``{"category", "kind", "title", "body"}`` opens a topic.
- ``topics/<id>/posts/``: GET the posts the caller reads, in order; POST ``{"body"}`` replies.
- ``posts/<id>/accept/``: POST accepts an answer (the question's author or an agent);
  DELETE takes the accept back.
- ``topics/<id>/escalate/``: POST (agents) opens the topic's private ticket, or finds it;
  answers ``{"reference"}``.

Who is calling: an agent (API token or the desk's session), a customer (their API
token, or the help centre's ``sd_help`` cookie, with which writing needs the CSRF
token as the pages' forms do), or nobody (reads public categories). Anything the caller may not read is
404 on every request, as on the pages (``access.py``); writing is refused as the
services refuse it (400 with the field, 403, 429).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.web.api import HelpSessionAuthentication
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import NotFound
from servicedesk.core.throttles import ClientIpThrottleAuthentication
from servicedesk.tickets.access import customer_of_user

from . import access
from .access import Viewer
from .escalation import topic_escalate
from .models import Category, Kind, Post, State, Topic
from .services import member_ensure, post_accept, post_create, post_unaccept, topic_create, topic_url

AUTHENTICATION = [ClientIpThrottleAuthentication, HelpSessionAuthentication, TokenAuthentication, SessionAuthentication]


def api_viewer(request: Request) -> Viewer:
    """The caller as the access rules take them: an agent, a help-centre customer, or nobody."""
    user = request.user
    if is_agent(user):
        return access.viewer_for(user=user)
    # A help-centre session, or a customer's own API token.
    return access.viewer_for(customer=customer_of_user(user))


def writer(request: Request) -> Viewer:
    """The caller with their forum profile (made on their first write); 401 for nobody."""
    viewer = api_viewer(request)
    if not viewer.signed_in:
        raise exceptions.NotAuthenticated()
    if viewer.member is None:
        member = member_ensure(customer=viewer.customer) if viewer.customer else member_ensure(user=viewer.agent)
        viewer = Viewer(customer=viewer.customer, agent=viewer.agent, member=member)
    return viewer


class ReadOrSignedIn(BasePermission):
    """Anyone reads (what they may read); writing needs an agent or a signed-in customer."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or api_viewer(request).signed_in


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def _language() -> str:
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"


class CategorySerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Category
        fields = ["slug", "name", "description", "visibility", "is_support", "topics_count", "posts_count", "url"]

    def get_name(self, category: Category) -> str:
        return category.label(_language())

    def get_description(self, category: Category) -> str:
        return category.about(_language())

    def get_url(self, category: Category) -> str:
        return _absolute(reverse("forum:category", args=[category.slug]))


class AuthorSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("The member's display name."))
    staff = serializers.BooleanField()


class PostSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    body = serializers.CharField(help_text=_("Markdown."))
    body_html = serializers.CharField(read_only=True, help_text=_("The Markdown rendered and sanitised."))

    class Meta:
        model = Post
        fields = [
            "id",
            "position",
            "author",
            "is_staff",
            "body",
            "body_html",
            "state",
            "accepted",
            "likes_count",
            "created_at",
            "edited_at",
            "url",
        ]
        read_only_fields = [f for f in fields if f != "body"]

    @extend_schema(responses=AuthorSerializer)  # type: ignore[misc]
    def get_author(self, post: Post) -> dict[str, Any]:
        return {"name": post.author.display_name if post.author_id else "", "staff": post.is_staff}

    def get_url(self, post: Post) -> str:
        return _absolute(reverse("forum:post", args=[post.pk]))


class AnswerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    author = AuthorSerializer()
    body_html = serializers.CharField()
    url = serializers.CharField(help_text=_("The answer on its topic's page."))


class TopicSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", queryset=Category.objects.none())
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.QUESTION)
    body = serializers.CharField(write_only=True, help_text=_("The opening post, Markdown."))
    author = serializers.SerializerMethodField()
    answer = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Topic
        fields = [
            "id",
            "category",
            "kind",
            "title",
            "body",
            "author",
            "state",
            "locked",
            "pinned",
            "posts_count",
            "votes_count",
            "me_too_count",
            "accepted_count",
            "created_at",
            "last_post_at",
            "answer",
            "url",
        ]
        read_only_fields = [f for f in fields if f not in ("category", "kind", "title", "body")]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        viewer = self.context.get("viewer")
        if viewer is not None:
            # A category the caller may not read does not exist for them (400 "does not exist").
            self.fields["category"].queryset = access.categories_visible_to(viewer)  # type: ignore[attr-defined]

    @extend_schema(responses=AuthorSerializer)  # type: ignore[misc]
    def get_author(self, topic: Topic) -> dict[str, Any]:
        author = topic.author
        return {"name": author.display_name if author else "", "staff": bool(author and author.user_id)}

    @extend_schema(responses=AnswerSerializer(allow_null=True))  # type: ignore[misc]
    def get_answer(self, topic: Topic) -> dict[str, Any] | None:
        answers: list[Post] = getattr(topic, "answers", None) or []
        if not answers:
            return None
        post = answers[0]
        return {
            "id": post.pk,
            "author": {"name": post.author.display_name if post.author_id else "", "staff": post.is_staff},
            "body_html": post.body_html,
            "url": _absolute(reverse("forum:post", args=[post.pk])),
        }

    def get_url(self, topic: Topic) -> str:
        return _absolute(topic_url(topic))


def _with_answers(topics: QuerySet[Topic], viewer: Viewer) -> QuerySet[Topic]:
    """Each topic's accepted answers the caller reads, first position first (one query for the page)."""
    answers = Post.objects.filter(accepted=True, position__gt=1)
    if not viewer.is_staff:
        # The topic is one the caller reads; an answer hidden or held since is not shown to others.
        answers = answers.filter(state=State.VISIBLE)
    answers = answers.select_related("author").order_by("position")
    return topics.select_related("category", "author").prefetch_related(
        Prefetch("posts", queryset=answers, to_attr="answers")
    )


class Categories(generics.ListAPIView):
    """The categories the caller reads, in the community's order."""

    authentication_classes = AUTHENTICATION
    permission_classes = [ReadOrSignedIn]
    serializer_class = CategorySerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Category]:
        return access.categories_visible_to(api_viewer(self.request)).order_by("position", "name")


class Topics(generics.ListCreateAPIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [ReadOrSignedIn]
    serializer_class = TopicSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "viewer": api_viewer(self.request)}

    def get_queryset(self) -> QuerySet[Topic]:
        viewer = api_viewer(self.request)
        topics = access.topics_visible_to(viewer, own_unlisted=False).filter(merged_into__isnull=True)
        slug = self.request.query_params.get("category")
        if slug:
            try:
                category = access.category_get_for(viewer, slug)
            except NotFound:
                raise exceptions.NotFound() from None
            topics = topics.filter(category=category)
        kind = self.request.query_params.get("kind")
        if kind:
            if kind not in Kind.values:
                raise exceptions.ValidationError({"kind": [_("Unknown kind.")]})
            topics = topics.filter(kind=kind)
        return _with_answers(topics, viewer).order_by("-pinned", "-last_post_at", "-id")

    @extend_schema(
        parameters=[
            OpenApiParameter("category", str, description="A category's slug."),
            OpenApiParameter("kind", str, enum=Kind.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The topics the caller reads, pinned first, then by latest activity, each with its accepted answer."""
        return super().get(request, *args, **kwargs)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Open a topic as the caller (a new member's first topics wait for a moderator: ``state`` held)."""
        viewer = writer(request)
        serializer = TopicSerializer(data=request.data, context={"viewer": viewer})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assert viewer.member is not None
        topic = topic_create(
            member=viewer.member, category=data["category"], kind=data["kind"], title=data["title"], body=data["body"]
        )
        shown = _with_answers(Topic.objects.filter(pk=topic.pk), viewer).get()
        return Response(TopicSerializer(shown, context={"viewer": viewer}).data, status=status.HTTP_201_CREATED)


def _topic(viewer: Viewer, pk: int) -> Topic:
    try:
        return access.topic_get_for(viewer, pk)
    except NotFound:
        raise exceptions.NotFound() from None


class TopicPosts(generics.ListCreateAPIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [ReadOrSignedIn]
    serializer_class = PostSerializer

    def get_queryset(self) -> QuerySet[Post]:
        viewer = api_viewer(self.request)
        topic = _topic(viewer, self.kwargs["pk"])
        return access.posts_visible_to(viewer, topic).select_related("author").order_by("position")

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The topic's posts the caller reads, the opening post first."""
        return super().get(request, *args, **kwargs)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Reply to the topic as the caller."""
        viewer = writer(request)
        topic = _topic(viewer, kwargs["pk"])
        serializer = PostSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert viewer.member is not None
        post = post_create(member=viewer.member, topic=topic, body=serializer.validated_data["body"])
        post = Post.objects.select_related("author").get(pk=post.pk)
        return Response(PostSerializer(post).data, status=status.HTTP_201_CREATED)


class AcceptedSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()


class PostAccept(APIView):
    """Accept an answer (POST) or take the accept back (DELETE): the question's author or an agent."""

    authentication_classes = AUTHENTICATION
    permission_classes = [ReadOrSignedIn]
    serializer_class = AcceptedSerializer

    def _post(self, request: Request, pk: int) -> tuple[Viewer, Post]:
        viewer = writer(request)
        try:
            return viewer, access.post_get_for(viewer, pk)
        except NotFound:
            raise exceptions.NotFound() from None

    @extend_schema(request=None, responses=AcceptedSerializer)
    def post(self, request: Request, pk: int) -> Response:
        viewer, post = self._post(request, pk)
        assert viewer.member is not None
        post_accept(member=viewer.member, post=post)
        return Response({"accepted": True})

    @extend_schema(request=None, responses=AcceptedSerializer)
    def delete(self, request: Request, pk: int) -> Response:
        viewer, post = self._post(request, pk)
        assert viewer.member is not None
        post_unaccept(member=viewer.member, post=post)
        return Response({"accepted": False})


class EscalateSerializer(serializers.Serializer):
    public_note = serializers.BooleanField(
        default=False, help_text=_("Say on the topic that it moved to private support.")
    )


class EscalatedSerializer(serializers.Serializer):
    reference = serializers.CharField(help_text=_("The ticket's reference."))


class AgentsOnly(BasePermission):
    message = _("Only agents move a topic to a ticket.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_agent(request.user)


class TopicEscalate(APIView):
    """Open the topic's private ticket (its author the customer), or find the one opened already."""

    authentication_classes = [ClientIpThrottleAuthentication, TokenAuthentication, SessionAuthentication]
    permission_classes = [AgentsOnly]
    serializer_class = EscalateSerializer

    @extend_schema(request=EscalateSerializer, responses=EscalatedSerializer)
    def post(self, request: Request, pk: int) -> Response:
        viewer = api_viewer(request)
        topic = _topic(viewer, pk)
        serializer = EscalateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket = topic_escalate(topic=topic, agent=viewer.agent, public_note=serializer.validated_data["public_note"])
        return Response({"reference": ticket.reference})
