"""The inbox's part of REST API v1, mounted at /api/v1/ before the tickets API (docs/inbox.md)."""

from django.urls import path

from servicedesk.desk import api

app_name = "desk_api"
urlpatterns = [
    path("views/", api.SavedViewListView.as_view(), name="view-list"),
    path("views/counts/", api.SavedViewCountsView.as_view(), name="view-counts"),
    path("views/<int:pk>/", api.SavedViewDetailView.as_view(), name="view-detail"),
    path("tickets/bulk/", api.TicketBulkView.as_view(), name="ticket-bulk"),
    path("bulk-jobs/<int:pk>/", api.BulkJobDetailView.as_view(), name="bulk-job-detail"),
    path("bulk-jobs/<int:pk>/cancel/", api.BulkJobCancelView.as_view(), name="bulk-job-cancel"),
]
