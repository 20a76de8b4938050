from django.urls import path

from channels_app.web import views

app_name = "web"
urlpatterns = [
    path("", views.help_home, name="home"),
    path("contact/", views.contact, name="contact"),
    path("contact/received/", views.contact_received, name="contact_received"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/sent/", views.sign_in_sent, name="sign_in_sent"),
    path("sign-in/<str:token>/", views.sign_in_link, name="sign_in_link"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("sign-out/everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("account/", views.account, name="account"),
    path("account/verify/<str:token>/", views.account_verify, name="account_verify"),
    path("tickets/", views.portal_home, name="portal"),
    path("tickets/<str:token>/", views.ticket, name="ticket"),
    path("tickets/<str:token>/status/", views.ticket_status, name="ticket_status"),
    path("tickets/<str:token>/attachments/<str:key>/", views.ticket_attachment, name="attachment"),
    path("surveys/<str:token>/", views.survey, name="survey"),
    path("requests/<str:reference>/", views.request_detail, name="request"),
    path("requests/<str:reference>/status/", views.request_status, name="request_status"),
    path("requests/<str:reference>/attachments/<str:key>/", views.request_attachment, name="request_attachment"),
]
