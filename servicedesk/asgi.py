"""The ASGI application: Django's pages and API over HTTP, the live streams over WebSocket.

``/ws/desk/`` (servicedesk/live/routing.py) takes the session cookie; every
WebSocket passes the Origin check first (servicedesk/live/origin.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
# Django first: the routes below import models.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from servicedesk.live.origin import origin_checked  # noqa: E402
from servicedesk.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": origin_checked(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
