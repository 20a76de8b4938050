from django.urls import path

from servicedesk.kb import views

app_name = "kb"
urlpatterns = [
    path("", views.kb_home, name="home"),
    path("search/", views.kb_search_page, name="search"),
    path("categories/<slug:slug>/", views.kb_category, name="category"),
    path("suggest/", views.kb_suggest, name="suggest"),
    path("articles/<int:pk>/", views.kb_article, name="article"),
    path("articles/<int:pk>/vote/", views.kb_vote, name="vote"),
    path("images/<str:key>/", views.kb_image, name="image"),
]
