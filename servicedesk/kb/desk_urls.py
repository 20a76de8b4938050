from django.urls import path

from servicedesk.kb import views

app_name = "kb_desk"
urlpatterns = [
    path("", views.desk_list, name="list"),
    path("new/", views.desk_edit, name="new"),
    path("<int:pk>/", views.desk_edit, name="edit"),
    path("<int:pk>/images/", views.desk_image, name="image"),
    path("from-ticket/<str:reference>/<int:message_pk>/", views.desk_from_ticket, name="from_ticket"),
]
