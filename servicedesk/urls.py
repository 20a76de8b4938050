from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from servicedesk.core.views import healthz

# A database outage raised outside a view answers 503 too (core/outage.py).
handler500 = "servicedesk.core.outage.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url="/help/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("help/chat/", include("channels_app.chat.urls")),
    path("help/kb/", include("servicedesk.kb.urls")),
    path("help/", include("channels_app.web.urls")),
    path("community/", include("channels_app.forum.urls")),
    path("desk/reports/", include("reports.urls")),
    path("desk/chat/", include("channels_app.chat.console_urls")),
    path("desk/calls/", include("channels_app.phone.desk_urls")),
    path("desk/kb/", include("servicedesk.kb.desk_urls")),
    path("desk/community/", include("channels_app.forum.desk_urls")),
    path("desk/webhooks/", include("servicedesk.webhooks.desk_urls")),
    path("desk/", include("servicedesk.macros.desk_urls")),
    path("desk/", include("servicedesk.desk.urls")),
    path("api/v1/reports/", include("reports.api.urls")),
    # Before the tickets API: /tickets/bulk/ is not a ticket's reference (docs/inbox.md).
    path("api/v1/", include("servicedesk.desk.api_urls")),
    path("api/v1/", include("servicedesk.tickets.api.urls")),
    path("api/v1/", include("servicedesk.routing.api_urls")),
    # Mounted here, not by the tickets API: the domain imports no channel (docs/architecture.md).
    path("api/v1/", include("channels_app.email.api_urls")),
    path("api/v1/", include("channels_app.chat.api_urls")),
    path("api/v1/", include("channels_app.phone.api_urls")),
    path("api/v1/", include("servicedesk.kb.api_urls")),
    path("api/v1/", include("servicedesk.macros.api_urls")),
    path("api/v1/", include("channels_app.web.api_urls")),
    path("api/v1/", include("channels_app.forum.api_urls")),
    path("api/v1/", include("servicedesk.webhooks.api_urls")),
    path("desk/routing/", include("servicedesk.routing.urls")),
    path("desk/notifications/", include("servicedesk.notifications.urls")),
    # Following, reminders and notification preferences (docs/followups.md).
    path("api/v1/", include("servicedesk.notifications.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
