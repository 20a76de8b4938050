from django.urls import path

from channels_app.forum import api

app_name = "forum_api"
urlpatterns = [
    path("community/categories/", api.Categories.as_view(), name="categories"),
    path("community/topics/", api.Topics.as_view(), name="topics"),
    path("community/topics/<int:pk>/posts/", api.TopicPosts.as_view(), name="topic_posts"),
    path("community/topics/<int:pk>/escalate/", api.TopicEscalate.as_view(), name="topic_escalate"),
    path("community/posts/<int:pk>/accept/", api.PostAccept.as_view(), name="post_accept"),
]
