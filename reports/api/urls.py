"""Reports' part of REST API v1, mounted at /api/v1/reports/."""

from django.urls import path

from reports.api import views

app_name = "reports_api"
urlpatterns = [
    path("", views.ReportJobListView.as_view(), name="jobs"),
    path("<int:pk>/", views.ReportJobDetailView.as_view(), name="job"),
]
