from django.urls import path

from channels_app.web import api

app_name = "web_api"
urlpatterns = [
    path("portal/tickets/", api.PortalTickets.as_view(), name="portal_tickets"),
    path("portal/tickets/<str:reference>/", api.PortalTicket.as_view(), name="portal_ticket"),
    path("portal/tickets/<str:reference>/status/", api.PortalTicketStatus.as_view(), name="portal_ticket_status"),
    path("surveys/<str:token>/", api.SurveyView.as_view(), name="survey"),
]
