"""The ASGI application: Django's pages and API over HTTP, the live streams over WebSocket.

``/ws/desk/`` (servicedesk/live/routing.py) takes the session cookie and
passes the Origin check first (servicedesk/live/origin.py); ``/ws/chat/``
(channels_app/chat/consumers.py) takes a visitor token and checks the Origin
against its chat widget's allowed origins.

Once the application is built, what the process loaded so far (Django, the
apps, their modules) is moved out of the garbage collector's way
(``gc.freeze``): it lives as long as the process, and a full collection no
longer walks it. With a thousand open chats that halved the pauses of full
collections (docs/performance.md, "Live chat"). The young generation's
threshold is then raised (``SD_GC_THRESHOLDS``, 10,000 instead of 700): the
sockets' short-lived objects die by reference counting before a collection
would promote them, so the older generations fill slowly and a full
collection (each one a pause of every socket of the process, 33 to 144 ms
with a thousand chats) becomes rare.
"""

import gc
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
# Django first: the routes below import models.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from channels_app.chat.consumers import ChatConsumer  # noqa: E402
from channels_app.phone.asgi import with_events_route  # noqa: E402
from servicedesk.live.origin import origin_checked  # noqa: E402
from servicedesk.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The phone events webhook is answered without Django's request handling (channels_app/phone/asgi.py).
        "http": with_events_route(django_application),
        "websocket": URLRouter(
            [
                # The visitor's socket checks its widget's allowed origins itself, and takes no cookie.
                path("ws/chat/", ChatConsumer.as_asgi()),  # type: ignore[arg-type, list-item]
                re_path(r"^", origin_checked(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))),  # type: ignore[list-item]
            ]
        ),
    }
)

gc.collect()
gc.freeze()
gc.set_threshold(*settings.SERVICEDESK["GC_THRESHOLDS"])
