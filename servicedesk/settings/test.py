"""Test settings: PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set.

Tasks run eagerly here (on commit); the end-to-end tests start a real worker
with ``servicedesk.settings.local`` and these same URLs instead.
"""

from .base import *  # noqa: F403
from .base import SERVICEDESK, VAR_DIR

DEBUG = False
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "test-media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# pytest-django's in-process live server speaks no WebSocket: the pages leave
# the live stream out; the browser test of live updates runs the real server.
# Missed calls make their callback tickets at once; tests/channels_app/phone/test_settle.py
# runs with the product's wait for late answers.
# A test's event loop ends with the test: visitors' lines are stored from the loop
# (its own pool of connections) only in the tests that close that pool before the
# loop ends (tests/channels_app/chat); the end-to-end servers store them so too.
SERVICEDESK = {
    **SERVICEDESK,
    "LIVE_UPDATES": False,
    "PHONE_CALLBACK_SETTLE_SECONDS": 0,
    "SMS_BACKEND": "locmem",
    "CHAT_LOOP_LINES": False,
    # A new member's first post waits for a moderator in the product; the tests that hold
    # posts say how many (tests/channels_app/forum/test_desk.py), the others publish at once.
    "FORUM_NEW_HELD_POSTS": 0,
    # Replies are held for undo in the product; the tests of the hold say how long
    # (tests/tickets/test_undo_send.py), the others send at once.
    "UNDO_SEND_SECONDS": 0,
}
# Static files come straight from the app folders, as in development, so the
# tests need no collectstatic run.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Pushes stay in the process (the consumers' tests); the end-to-end tests run
# the servers with servicedesk.settings.local and the real layers.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
