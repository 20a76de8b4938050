"""Chat protocol v1 over HTTP, mounted at /api/v1/ (docs/chat-protocol.md)."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from . import api

_start = api.StartView.as_view()
_list = api.AgentConversationsView.as_view()


@csrf_exempt
def conversations(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """One address, two callers: visitors start a chat (POST), agents list theirs (GET).
    Each view applies its own authentication, CSRF and throttles."""
    if request.method in ("POST", "OPTIONS"):
        return _start(request)  # type: ignore[no-any-return]
    return _list(request)  # type: ignore[no-any-return]


app_name = "chat_api"
urlpatterns = [
    path("chat/widgets/<slug:key>/", api.WidgetView.as_view(), name="widget"),
    path("chat/widgets/<slug:key>/suggestions/", api.SuggestionsView.as_view(), name="suggestions"),
    path("chat/conversations/", conversations, name="conversations"),
    path("chat/conversations/<int:pk>/", api.AgentConversationView.as_view(), name="conversation"),
    path("chat/conversations/<int:pk>/accept/", api.AcceptView.as_view(), name="accept"),
    path("chat/conversations/<int:pk>/messages/", api.AgentMessageView.as_view(), name="messages"),
    path("chat/conversations/<int:pk>/transfer/", api.TransferView.as_view(), name="transfer"),
    path("chat/conversations/<int:pk>/end/", api.EndView.as_view(), name="end"),
    path("chat/conversations/<int:pk>/wrap-up/", api.WrapUpView.as_view(), name="wrap-up"),
    path("chat/conversations/<int:pk>/typing/", api.TypingView.as_view(), name="typing"),
    path("chat/conversations/<int:pk>/confirm-identity/", api.ConfirmIdentityView.as_view(), name="confirm-identity"),
    path("chat/conversations/<int:pk>/rating/", api.RatingView.as_view(), name="rating"),
    path("chat/conversations/<int:pk>/transcript/", api.TranscriptView.as_view(), name="transcript"),
    path("chat/conversations/<int:pk>/leave/", api.LeaveView.as_view(), name="leave"),
    path("chat/conversations/<int:pk>/files/", api.VisitorFileView.as_view(), name="files"),
    path("chat/conversations/<int:pk>/transfer-targets/", api.TransferTargetsView.as_view(), name="transfer-targets"),
    path("chat/canned-replies/", api.CannedRepliesView.as_view(), name="canned-replies"),
]
