from django.urls import path, re_path

from channels_app.forum import views

app_name = "forum"
urlpatterns = [
    path("", views.home, name="home"),
    path("sitemap.xml", views.sitemap, name="sitemap"),
    path("sitemap-<int:number>.xml", views.sitemap_page, name="sitemap_page"),
    path("profile/", views.profile, name="profile"),
    path("c/<slug:slug>/", views.category_page, name="category"),
    path("c/<slug:slug>/new/", views.topic_new, name="topic_new"),
    path("c/<slug:slug>/feed/", views.category_feed, name="feed"),
    path("c/<slug:slug>/subscribe/", views.category_subscribe, name="category_subscribe"),
    path("t/<int:pk>/", views.topic_short, name="topic_short"),
    path("t/<int:pk>/reply/", views.reply, name="reply"),
    path("t/<int:pk>/vote/", views.vote, name="vote"),
    path("t/<int:pk>/me-too/", views.me_too, name="me_too"),
    path("t/<int:pk>/subscribe/", views.topic_subscribe, name="topic_subscribe"),
    # /t/<id>-<slug>/: the slug is decoration; a wrong one redirects to the right one.
    re_path(r"^t/(?P<pk>[0-9]+)-(?P<slug>[^/]*)/$", views.topic_page, name="topic"),
    path("p/<int:pk>/", views.post_link, name="post"),
    path("p/<int:pk>/edit/", views.post_edit_page, name="post_edit"),
    path("p/<int:pk>/like/", views.like, name="like"),
    path("p/<int:pk>/accept/", views.accept, name="accept"),
    path("p/<int:pk>/flag/", views.flag, name="flag"),
    path("attachments/<str:key>/", views.attachment, name="attachment"),
    path("unsubscribe/m/<str:key>/", views.unsubscribe_mentions, name="unsubscribe_mentions"),
    path("unsubscribe/<str:key>/", views.unsubscribe, name="unsubscribe"),
]
