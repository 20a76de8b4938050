"""The community's desk pages, mounted at ``/desk/community/`` by the project (servicedesk/urls.py)."""

from django.urls import path

from channels_app.forum import desk_views

app_name = "forum_desk"
urlpatterns = [
    path("", desk_views.queue, name="queue"),
    path("log/", desk_views.log, name="log"),
    path("posts/<int:pk>/escalate/", desk_views.post_escalate_view, name="post_escalate"),
    path("posts/<int:pk>/<slug:action>/", desk_views.post_action, name="post_action"),
    path("topics/<int:pk>/escalate/", desk_views.topic_escalate_view, name="topic_escalate"),
    path("topics/<int:pk>/<slug:action>/", desk_views.topic_action, name="topic_action"),
    path("members/<int:pk>/<slug:action>/", desk_views.member_action, name="member_action"),
    path(
        "tickets/<str:reference>/messages/<int:message_id>/post-back/",
        desk_views.ticket_post_back,
        name="ticket_post_back",
    ),
    path("tickets/<str:reference>/summary/", desk_views.ticket_summary, name="ticket_summary"),
]
