"""REST API v1, mounted at /api/v1/."""

from django.urls import path

from servicedesk.tickets.api import merging, views

app_name = "tickets_api"
urlpatterns = [
    path("tickets/", views.TicketListView.as_view(), name="ticket-list"),
    path("tickets/<str:reference>/", views.TicketDetailView.as_view(), name="ticket-detail"),
    path("tickets/<str:reference>/messages/", views.TicketMessagesView.as_view(), name="ticket-messages"),
    path(
        "tickets/<str:reference>/messages/<int:message_id>/resend/",
        views.MessageResendView.as_view(),
        name="message-resend",
    ),
    *merging.urlpatterns,  # merge and split (docs/merging.md)
    path("customers/", views.CustomerListView.as_view(), name="customer-list"),
    path("customers/<int:pk>/", views.CustomerDetailView.as_view(), name="customer-detail"),
]
