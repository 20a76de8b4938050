from django.urls import path

from channels_app.web import views

app_name = "web"
urlpatterns = [
    path("", views.help_home, name="home"),
    path("contact/", views.contact, name="contact"),
    path("contact/received/", views.contact_received, name="contact_received"),
    path("tickets/", views.portal_home, name="portal"),
    path("tickets/<str:token>/", views.ticket, name="ticket"),
    path("tickets/<str:token>/attachments/<str:key>/", views.attachment, name="attachment"),
]
