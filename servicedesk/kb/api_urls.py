from django.urls import path

from servicedesk.kb import api

app_name = "kb_api"
urlpatterns = [
    path("kb/articles/", api.ArticleList.as_view(), name="articles"),
    path("kb/articles/<int:pk>/", api.ArticleDetail.as_view(), name="article"),
    path("kb/search/", api.SearchView.as_view(), name="search"),
]
