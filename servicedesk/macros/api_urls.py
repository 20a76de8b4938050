"""The macros and canned replies API, mounted at ``/api/v1/`` by the project (servicedesk/urls.py)."""

from django.urls import path

from servicedesk.macros import api

app_name = "macros_api"
urlpatterns = [
    path("macros/", api.MacroListView.as_view(), name="macro-list"),
    path("macros/<int:pk>/", api.MacroDetailView.as_view(), name="macro-detail"),
    path("tickets/<str:reference>/macros/<int:pk>/apply/", api.MacroApplyView.as_view(), name="macro-apply"),
    path("tickets/<str:reference>/macros/<int:pk>/preview/", api.MacroPreviewView.as_view(), name="macro-preview"),
    path("canned-replies/", api.CannedReplyListView.as_view(), name="canned-list"),
    path("canned-replies/<int:pk>/", api.CannedReplyDetailView.as_view(), name="canned-detail"),
    path("canned-replies/<int:pk>/render/", api.CannedReplyRenderView.as_view(), name="canned-render"),
]
