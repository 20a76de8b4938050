"""Every setting, read from the environment with working local defaults.

``local.py``, ``test.py`` and ``production.py`` adjust only what differs; nothing
exists in production alone. The variables are listed in ``.env.example``.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from servicedesk.settings.channel_layers import redis_channel_layer

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("SERVICEDESK_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))

SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-development-key-change-me-0123456789")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The address in links we send (mail, notifications); without SITE_URL it is
# the local server's, on the port scripts/run serves (PORT, 8000 by default).
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "servicedesk.core",
    "servicedesk.accounts",
    "servicedesk.tickets",
    "servicedesk.sla",
    "servicedesk.routing",
    "servicedesk.notifications",
    "servicedesk.desk",
    "servicedesk.live",
    "servicedesk.kb",
    "servicedesk.macros",
    "channels_app.web",
    "channels_app.email",
    "channels_app.chat",
    "channels_app.phone",
    "channels_app.forum",
    "reports",
    "servicedesk.webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "servicedesk.core.input.RequestInputMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "servicedesk.core.outage.DatabaseOutageMiddleware",
]

ROOT_URLCONF = "servicedesk.urls"
WSGI_APPLICATION = "servicedesk.wsgi.application"
ASGI_APPLICATION = "servicedesk.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "servicedesk" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "servicedesk.core.context_processors.viewer_time_zone",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'servicedesk.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
SILENCED_SYSTEM_CHECKS: list[str] = []
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A covering index (INCLUDE) is PostgreSQL's; SQLite keeps its key columns, which is all
    # the zero-setup default needs (channels_app/forum/models.py, forum_post_reading).
    SILENCED_SYSTEM_CHECKS.append("models.W040")
    # Several processes (web, worker, beat) share the file: wait for locks
    # instead of failing, and write through the journal.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    # Parameters bound by the server, and a statement run SD_DB_PREPARE_THRESHOLD
    # times on a connection prepared there, so intake's repeated statements are
    # planned once per connection (docs/performance.md, "Intake"). 0 turns
    # preparing off: needed behind a pooler in transaction mode that does not
    # track prepared statements.
    _pg_options.setdefault("server_side_binding", env.bool("SD_DB_SERVER_SIDE_BINDING", default=True))
    _pg_options.setdefault("prepare_threshold", env.int("SD_DB_PREPARE_THRESHOLD", default=5) or None)
    # How the server plans a prepared statement (plan_cache_mode): empty, the server's own
    # ("auto": after five runs, one plan for any values when it looks no more costly);
    # force_custom_plan plans each run for its values. The lists of tickets are never
    # prepared (core/prepared.py, planned_for_values) whatever this says.
    _server_settings: list[str] = []
    _plan_cache_mode = env.str("SD_DB_PLAN_CACHE_MODE", default="").strip()
    if _plan_cache_mode not in ("", "auto", "force_custom_plan", "force_generic_plan"):
        raise ImproperlyConfigured("SD_DB_PLAN_CACHE_MODE: auto, force_custom_plan, force_generic_plan or empty.")
    if _plan_cache_mode and _pg_options["prepare_threshold"] is not None:
        _server_settings.append(f"-c plan_cache_mode={_plan_cache_mode}")
    # Parallel workers one statement may start (max_parallel_workers_per_gather); unset:
    # the database server's own. The web server sets 0 (servicedesk/serve.py).
    _parallel_workers = env.str("SD_DB_PARALLEL_WORKERS", default="").strip()
    if _parallel_workers:
        _server_settings.append(f"-c max_parallel_workers_per_gather={int(_parallel_workers)}")
    if _server_settings:
        _pg_options["options"] = " ".join(_server_settings)
    if env.bool("SD_DB_POOL", default=False):
        # A pool of connections per process (psycopg_pool, through Django), for
        # the web server: a request borrows one instead of opening its own.
        # Each borrowed connection is checked first, so a restarted database
        # costs no failed request. ``python -m servicedesk.serve`` turns it on.
        _pg_options["pool"] = {
            "min_size": env.int("SD_DB_POOL_MIN", default=2),
            "max_size": env.int("SD_DB_POOL_MAX", default=20),
            "timeout": env.float("SD_DB_POOL_TIMEOUT", default=5.0),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "desk:login"
LOGIN_REDIRECT_URL = "desk:inbox"
LOGOUT_REDIRECT_URL = "desk:login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "servicedesk" / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served directly: attachments go through an authorised view
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Redis: broker, cache (rate limits), later the channel layer. Without it the
# product still runs: a file-based Celery transport and a file cache.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # An unreachable broker is noticed within seconds; the request goes on without it.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"socket_connect_timeout": 2}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="sd"),
            # An unreachable Redis answers within a second; callers then degrade.
            # One connection pool for every thread of the process (core/cache.py).
            "OPTIONS": {
                "socket_connect_timeout": 1,
                "socket_timeout": 1,
                "pool_class": "servicedesk.core.cache.SharedConnectionPool",
            },
        }
    }
else:
    _broker_dir = VAR_DIR / "celery"
    for _folder in ("queue", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    # The file transport has no host, but kombu warns "No hostname was
    # supplied" for a URL without one on every connection: name it.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcast (worker control) tables; kombu's default is ./control.
        "control_folder": str(_broker_dir / "control"),
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# The channel layer that carries "something changed" to browsers
# (core/realtime.py): Redis with REDIS_URL; without it channels-lite's layer
# in a SQLite file of its own, which needs no server and is shared by every
# process on the machine (web, worker, beat). Its tables are made by
# `manage.py migrate --database channel_layer` (scripts/run does it).
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(REDIS_URL, prefix=env.str("CACHE_KEY_PREFIX", default="sd") + ":asgi")
    }
else:
    DATABASES["channel_layer"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / "channel-layer.sqlite3"),
        "OPTIONS": {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        },
    }
    DATABASE_ROUTERS = ["servicedesk.live.db_router.ChannelLayerRouter"]
    INSTALLED_APPS.append("channels_lite")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_lite.layers.core.SQLiteChannelLayer",
            "CONFIG": {"database": "channel_layer", "capacity": 500, "expiry": 60},
        }
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# The queue tasks go to, those a task enqueues included (a webhook's dispatch enqueues its attempts).
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "outbound-retry-stuck": {
        "task": "tickets.outbound_pending_dispatch",
        "schedule": timedelta(minutes=5),
    },
    # Messages left ``sending`` by a worker that died: failed, as interrupted.
    # Replies held for undo whose scheduled release was lost (docs/drafts.md).
    "tickets-held-replies-release": {
        "task": "tickets.held_replies_release_due",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 25},
    },
    "outbound-sending-expire": {
        "task": "tickets.message_delivery_expire_stale",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    "email-mailboxes-poll": {
        "task": "email.mailboxes_poll",
        "schedule": timedelta(minutes=1),
    },
    # Satisfaction surveys of the tickets solved SURVEY_DELAY_MINUTES ago, and mail still owed.
    "tickets-surveys-send": {
        "task": "tickets.surveys_send",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Help-centre sign-in links and sessions a day past their expiry.
    "web-signin-expired-delete": {
        "task": "web.signin_expired_delete",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
    # Calls whose stored events no task folded (a worker or the broker lost it).
    "phone-events-fold-pending": {
        "task": "phone.events_fold_pending",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 25},
    },
    # Chat offers that expire, visitors who left, idle chats, waiting chats to offer.
    "chat-tick": {
        "task": "chat.tick",
        "schedule": timedelta(seconds=5),
        "options": {"expires": 5},
    },
    "routing-waiting-tickets": {
        "task": "routing.waiting_tickets_route",
        "schedule": timedelta(minutes=1),
    },
    # Agents whose desk sent no heartbeat for PRESENCE_TIMEOUT_SECONDS go offline.
    "routing-presence-expire": {
        "task": "routing.agents_presence_expire",
        "schedule": timedelta(seconds=15),
        "options": {"expires": 14},
    },
    # Warnings, breach notices and escalations; a run left waiting behind a
    # busy worker expires rather than piling up (the next one covers it).
    "sla-breach-check": {
        "task": "sla.breach_check",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Reports: daily, weekly and monthly snapshots that are missing or stale,
    # and the subscribers' emails of each completed week or month.
    "reports-snapshots-due": {
        "task": "reports.snapshots_due",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
    "reports-subscriptions-send": {
        "task": "reports.subscriptions_send",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
    # Work whose task was lost while the broker was down: notification emails
    # still owed and report jobs still pending a minute on are enqueued again.
    "notifications-emails-owed": {
        "task": "notifications.emails_owed_dispatch",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Pending tickets whose pending-until time has come reopen; reminders whose time has
    # come are delivered. Each claims its rows, so a late or doubled run acts once (docs/followups.md).
    "tickets-snoozes-due-reopen": {
        "task": "tickets.snoozes_due_reopen",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    "notifications-reminders-due": {
        "task": "notifications.reminders_due_send",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    "reports-jobs-pending": {
        "task": "reports.jobs_pending_dispatch",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Inbox bulk jobs whose task was lost (broker down, worker lost): enqueued again (docs/inbox.md).
    "desk-bulk-jobs-pending": {
        "task": "desk.bulk_jobs_pending_dispatch",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Community: support questions past their target become tickets; authors of answered
    # questions without an accepted answer are asked once to accept one (docs/community.md).
    "forum-topics-escalate-due": {
        "task": "forum.topics_escalate_due",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    "forum-accept-reminders": {
        "task": "forum.accept_reminders_send",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
    # Webhook events whose dispatch task was lost (broker down), attempts due, endpoints
    # failing for 24 hours paused (docs/webhooks.md).
    "webhooks-sweep": {
        "task": "webhooks.sweep",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Delivered and failed webhook deliveries, and events, past SD_WEBHOOK_LOG_DAYS are deleted
    # in bounded batches; what is left waits for the next run (docs/webhooks.md, "Retention").
    "webhooks-log-prune": {
        "task": "webhooks.log_prune",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
    # Keys of macro applications past SD_MACRO_APPLICATION_KEY_DAYS (docs/macros.md#applying-once).
    "macros-applications-prune": {
        "task": "macros.applications_prune",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3000},
    },
}
CELERY_TIMEZONE = "UTC"

# Mail. Without EMAIL_HOST, outgoing mail is written to files under var/mail
# (a local mail catcher in docker-compose takes the SMTP path).
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Service desk <support@servicedesk.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if EMAIL_HOST:
    # Django's SMTP backend plus internationalised addresses (IDNA, SMTPUTF8).
    EMAIL_BACKEND = "channels_app.email.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "servicedesk.core.throttles.ClientIpThrottleAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "DEFAULT_PARSER_CLASSES": [
        "servicedesk.core.input.GuardedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "servicedesk.core.api.exception_handler",
    # Requests per client IP (all, counted before credentials are checked), per
    # client IP without credentials, per user (token or session) with them, and
    # to the signed inbound email endpoint; 429 with Retry-After above
    # ("<n>/second|minute|hour|day"). They let requests through when the cache
    # is unreachable.
    "DEFAULT_THROTTLE_CLASSES": [
        "servicedesk.core.throttles.AnonRateThrottle",
        "servicedesk.core.throttles.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "ip": env.str("SD_API_THROTTLE_IP", default="1200/minute"),
        "anon": env.str("SD_API_THROTTLE_ANON", default="60/minute"),
        "user": env.str("SD_API_THROTTLE_USER", default="600/minute"),
        # Signed requests only: a mail service forwarding a burst posts hundreds a second.
        "inbound_email": env.str("SD_API_THROTTLE_INBOUND_EMAIL", default="30000/minute"),
        "phone_events": env.str("SD_API_THROTTLE_PHONE_EVENTS", default="60000/minute"),
        # The chat widget, per client IP: chats started, and a visitor's other calls.
        "chat_start": env.str("SD_API_THROTTLE_CHAT_START", default="20/minute"),
        "chat_visitor": env.str("SD_API_THROTTLE_CHAT_VISITOR", default="300/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Service desk API",
    "DESCRIPTION": "Tickets, messages and customers across every channel.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from the installed sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema names the credentials; the first authentication class only throttles.
    "AUTHENTICATION_WHITELIST": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A report job's status shares its field name with the ticket's status.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "servicedesk.tickets.statuses.Status",
        "ReportJobStatusEnum": "reports.models.JobStatus",
        "ForumStateEnum": "channels_app.forum.models.State",
        "BulkActionEnum": "servicedesk.desk.models.BulkAction",
        "BulkJobStatusEnum": "servicedesk.desk.models.BulkJobStatus",
        "ViewScopeEnum": "servicedesk.desk.models.ViewScope",
        "MacroScopeEnum": "servicedesk.macros.models.Scope",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# The web server's garbage collector (servicedesk/asgi.py): the thresholds of the young,
# middle and old generations, the young one raised from Python's 700 so that open
# sockets' short-lived objects are not promoted and full collections stay rare.
try:
    GC_THRESHOLDS = tuple(env.list("SD_GC_THRESHOLDS", cast=int, default=[10000, 10, 10]))
except ValueError as exc:
    raise ImproperlyConfigured("SD_GC_THRESHOLDS takes three whole numbers, such as 10000,10,10.") from exc
if len(GC_THRESHOLDS) != 3 or min(GC_THRESHOLDS) < 1:
    raise ImproperlyConfigured("SD_GC_THRESHOLDS takes three whole numbers of 1 or more, such as 10000,10,10.")

# --- Product settings -------------------------------------------------------
SERVICEDESK = {
    # Promised answer time in the acknowledgement until SLA policies apply.
    "DEFAULT_FIRST_REPLY_HOURS": env.int("SD_DEFAULT_FIRST_REPLY_HOURS", default=24),
    "REFERENCE_PREFIX": "SD",
    "REFERENCE_OFFSET": 1000,
    "ATTACHMENT_MAX_COUNT": env.int("SD_ATTACHMENT_MAX_COUNT", default=5),
    "ATTACHMENT_MAX_BYTES": env.int("SD_ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024),
    "ATTACHMENT_ALLOWED_TYPES": env.list(
        "SD_ATTACHMENT_ALLOWED_TYPES",
        default=[
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/plain",
            "text/csv",
            "application/zip",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/msword",
            "application/vnd.ms-excel",
            # Forwarded mail, kept as an .eml file (docs/architecture.md, "The email channel").
            "message/rfc822",
        ],
    ),
    # Web form rate limits: submissions per window, per client IP and per email.
    "WEBFORM_RATE_PER_IP": env.int("SD_WEBFORM_RATE_PER_IP", default=10),
    "WEBFORM_RATE_PER_EMAIL": env.int("SD_WEBFORM_RATE_PER_EMAIL", default=5),
    "WEBFORM_RATE_WINDOW_SECONDS": env.int("SD_WEBFORM_RATE_WINDOW_SECONDS", default=3600),
    # Replies through a ticket's signed link: per ticket and per client IP, per window.
    "PORTAL_REPLY_RATE_PER_TICKET": env.int("SD_PORTAL_REPLY_RATE_PER_TICKET", default=20),
    "PORTAL_REPLY_RATE_PER_IP": env.int("SD_PORTAL_REPLY_RATE_PER_IP", default=30),
    "PORTAL_REPLY_RATE_WINDOW_SECONDS": env.int("SD_PORTAL_REPLY_RATE_WINDOW_SECONDS", default=3600),
    # Help-centre sign-in by emailed link (docs/help-centre.md): how long a link is valid,
    # how long a signed-in browser stays signed in, and the links asked for per window,
    # per address (more are not sent, with the same answer) and per client IP (429).
    "HELP_SIGNIN_LINK_MINUTES": env.int("SD_HELP_SIGNIN_LINK_MINUTES", default=15),
    "HELP_SESSION_DAYS": env.int("SD_HELP_SESSION_DAYS", default=30),
    "HELP_SIGNIN_PER_ADDRESS": env.int("SD_HELP_SIGNIN_PER_ADDRESS", default=5),
    "HELP_SIGNIN_PER_IP": env.int("SD_HELP_SIGNIN_PER_IP", default=20),
    "HELP_SIGNIN_WINDOW_SECONDS": env.int("SD_HELP_SIGNIN_WINDOW_SECONDS", default=3600),
    # Desk sign-in: after this many failed passwords for one account within the
    # window, the account waits SIGNIN_DELAY_SECONDS before the next try, twice
    # as long after each further failure (at most SIGNIN_DELAY_MAX_SECONDS);
    # one client IP gets this many failures per window over all accounts.
    "SIGNIN_FAILURES_PER_ACCOUNT": env.int("SD_SIGNIN_FAILURES_PER_ACCOUNT", default=5),
    "SIGNIN_FAILURES_PER_IP": env.int("SD_SIGNIN_FAILURES_PER_IP", default=30),
    "SIGNIN_FAILURE_WINDOW_SECONDS": env.int("SD_SIGNIN_FAILURE_WINDOW_SECONDS", default=900),
    "SIGNIN_DELAY_SECONDS": env.int("SD_SIGNIN_DELAY_SECONDS", default=30),
    "SIGNIN_DELAY_MAX_SECONDS": env.int("SD_SIGNIN_DELAY_MAX_SECONDS", default=900),
    # Seconds in the Retry-After of the 503 answered while the database is unreachable.
    "OUTAGE_RETRY_AFTER_SECONDS": env.int("SD_OUTAGE_RETRY_AFTER_SECONDS", default=30),
    "DEFAULT_QUEUE": env.str("SD_DEFAULT_QUEUE", default="support"),
    "SUPPORT_ADDRESS": env.str("SD_SUPPORT_ADDRESS", default="support@servicedesk.example"),
    "OUTBOUND_MAX_ATTEMPTS": 5,
    # Seconds a public reply sent from the ticket page is held before delivery, so it can be undone
    # (docs/drafts.md); 0 sends at once.
    "UNDO_SEND_SECONDS": env.int("SD_UNDO_SEND_SECONDS", default=10),
    # A message still ``sending`` this long after its claim was left by a
    # worker that died: it is marked failed as interrupted (docs/architecture.md).
    # The delivery task's time limit is a minute shorter, so no live worker
    # still holds such a claim.
    "OUTBOUND_SENDING_LEASE_SECONDS": env.int("SD_OUTBOUND_SENDING_LEASE_SECONDS", default=900),
    # A customer message reopens a closed ticket within this many days of its
    # solve; later it opens a new ticket linked to the old one.
    "REOPEN_WINDOW_DAYS": env.int("SD_REOPEN_WINDOW_DAYS", default=30),
    # Acknowledgements to one customer at most, against auto-responders that
    # mark nothing as automatic.
    # Satisfaction surveys (docs/help-centre.md): asked this many minutes after a solve,
    # never twice within SURVEY_QUIET_DAYS to one customer, open SURVEY_OPEN_DAYS.
    "SURVEY_DELAY_MINUTES": env.int("SD_SURVEY_DELAY_MINUTES", default=60),
    "SURVEY_QUIET_DAYS": env.int("SD_SURVEY_QUIET_DAYS", default=7),
    "SURVEY_OPEN_DAYS": env.int("SD_SURVEY_OPEN_DAYS", default=28),
    "ACK_MAX_PER_HOUR": env.int("SD_ACK_MAX_PER_HOUR", default=3),
    "ACK_MAX_PER_DAY": env.int("SD_ACK_MAX_PER_DAY", default=10),
    # Shared secret of POST /api/v1/inbound/email/ (HMAC-SHA256 of the body);
    # empty disables the endpoint.
    "INBOUND_EMAIL_SECRET": env.str("SD_INBOUND_EMAIL_SECRET", default=""),
    # Largest mail that endpoint (413 above) and the LMTP listener (552) accept;
    # 0 = the parser's MAX_BYTES.
    "INBOUND_EMAIL_MAX_BYTES": env.int("SD_INBOUND_EMAIL_MAX_BYTES", default=0),
    # Requests refused for a missing or wrong signature, per client IP and
    # minute, after which that IP gets 429 before its body is read.
    "INBOUND_EMAIL_REFUSED_PER_MINUTE": env.int("SD_INBOUND_EMAIL_REFUSED_PER_MINUTE", default=30),
    # Phone (docs/phone.md): the secret of the default line's generic CTI
    # events (HMAC-SHA256, X-ServiceDesk-Signature), the Twilio account's auth
    # token, and the region numbers written the national way belong to (ISO
    # 3166 code: "0861234567" in IE is +353861234567).
    "PHONE_WEBHOOK_SECRET": env.str("SD_PHONE_WEBHOOK_SECRET", default=""),
    "TWILIO_AUTH_TOKEN": env.str("SD_TWILIO_AUTH_TOKEN", default=""),
    "PHONE_REGION": env.str("SD_PHONE_REGION", default="IE"),
    # Text messages (verification codes): file (var/sms/), locmem or twilio (servicedesk/core/sms.py).
    "SMS_BACKEND": env.str("SD_SMS_BACKEND", default="file"),
    "SMS_FROM": env.str("SD_SMS_FROM", default=""),
    "TWILIO_ACCOUNT_SID": env.str("SD_TWILIO_ACCOUNT_SID", default=""),
    # Phone events refused for their signature, per client IP and minute,
    # after which that IP gets 429 before its body is read.
    "PHONE_REFUSED_PER_MINUTE": env.int("SD_PHONE_REFUSED_PER_MINUTE", default=30),
    # A webhook's event is stored and its call folded by a worker (phone.call_fold), so the
    # telephone system is answered at once; without Redis (whose queue a worker reads at
    # once) the call is folded in the request instead (docs/phone.md).
    "PHONE_FOLD_IN_WORKER": env.bool("SD_PHONE_FOLD_IN_WORKER", default=bool(REDIS_URL)),
    # The generic CTI webhook answered on the web server's event loop, in front of
    # Django's request handling (channels_app/phone/asgi.py; with Redis and PostgreSQL only).
    "PHONE_DIRECT_ROUTE": env.bool("SD_PHONE_DIRECT_ROUTE", default=True),
    # Database connections of each web server process's event loop, for the statements
    # awaited there (servicedesk/core/loop_db.py: phone events, visitors' chat lines).
    "LOOP_DB_CONNECTIONS": env.int("SD_LOOP_DB_CONNECTIONS", default=4),
    # A visitor's chat line stored by one statement awaited on the event loop, with
    # PostgreSQL (channels_app/chat/loop_line.py); false: by the service on a thread.
    "CHAT_LOOP_LINES": env.bool("SD_CHAT_LOOP_LINES", default=True),
    "GC_THRESHOLDS": GC_THRESHOLDS,
    # A missed call's callback ticket is made this many seconds after the fold first finds
    # the call ended unanswered, so an answer the telephone system reports late (after its
    # hang-up) makes the same ticket as in order; 0: at once (docs/phone.md).
    "PHONE_CALLBACK_SETTLE_SECONDS": env.int("SD_PHONE_CALLBACK_SETTLE_SECONDS", default=60),
    # Fernet keys for credentials stored in the database (mailbox passwords);
    # the first encrypts, all decrypt. Empty: a key derived from SECRET_KEY.
    "CREDENTIALS_KEYS": env.list("SD_CREDENTIALS_KEY", default=[]),
    # Routing: customer tiers served first when tickets wait (first = highest;
    # other tiers and customers without an organization come last), the open
    # tickets a new agent profile may hold, and tickets routed per drain.
    "ROUTING_TIER_ORDER": env.list("SD_ROUTING_TIER_ORDER", default=["enterprise", "vip", "premium", "standard"]),
    "ROUTING_DEFAULT_CAPACITY": env.int("SD_ROUTING_DEFAULT_CAPACITY", default=10),
    "ROUTING_DRAIN_BATCH": env.int("SD_ROUTING_DRAIN_BATCH", default=500),
    # The chats a new agent profile is offered at the same time at most, and how
    # long an agent stays online or away without a heartbeat of their desk.
    "ROUTING_DEFAULT_CHAT_CAPACITY": env.int("SD_ROUTING_DEFAULT_CHAT_CAPACITY", default=2),
    "PRESENCE_TIMEOUT_SECONDS": env.int("SD_PRESENCE_TIMEOUT_SECONDS", default=45),
    # Desk pages open the live stream (/ws/desk/) and update themselves.
    "LIVE_UPDATES": env.bool("SD_LIVE_UPDATES", default=True),
    # Inbox bulk actions (docs/inbox.md): selections up to BULK_SYNC_MAX tickets are changed
    # in the request, larger ones by a worker; at most BULK_MAX tickets at once.
    "BULK_SYNC_MAX": env.int("SD_BULK_SYNC_MAX", default=20),
    "BULK_MAX": env.int("SD_BULK_MAX", default=10_000),
    # Live channels (docs/metrics.md#live): answered within this many seconds
    # counts for the service level, per channel; a session abandoned after
    # waiting less than SHORT_ABANDON_SECONDS is a short abandon.
    "LIVE_THRESHOLD_SECONDS": {
        "chat": env.int("SD_LIVE_THRESHOLD_CHAT_SECONDS", default=30),
        "phone": env.int("SD_LIVE_THRESHOLD_PHONE_SECONDS", default=20),
    },
    "SHORT_ABANDON_SECONDS": env.int("SD_SHORT_ABANDON_SECONDS", default=5),
    # Community moderation (docs/community.md, "Moderation"). Trust level n (1 basic, 2 member,
    # 3 regular) needs the n-th value of each list: approved posts, days since joining, likes received.
    "FORUM_TRUST_POSTS": env.list("SD_FORUM_TRUST_POSTS", cast=int, default=[3, 20, 100]),
    "FORUM_TRUST_DAYS": env.list("SD_FORUM_TRUST_DAYS", cast=int, default=[0, 15, 60]),
    "FORUM_TRUST_LIKES": env.list("SD_FORUM_TRUST_LIKES", cast=int, default=[0, 5, 30]),
    # New members (trust level 0): their first posts held for approval (0: none), at most so many
    # links and @mentions a post (more is refused), and posts an hour (more is refused, 429).
    "FORUM_NEW_HELD_POSTS": env.int("SD_FORUM_NEW_HELD_POSTS", default=1),
    "FORUM_NEW_MAX_LINKS": env.int("SD_FORUM_NEW_MAX_LINKS", default=2),
    "FORUM_NEW_MAX_MENTIONS": env.int("SD_FORUM_NEW_MAX_MENTIONS", default=2),
    "FORUM_NEW_POSTS_PER_HOUR": env.int("SD_FORUM_NEW_POSTS_PER_HOUR", default=10),
    # Anyone's post with one of these words, or a link to one of these domains (and their
    # subdomains), is held for approval.
    "FORUM_HOLD_WORDS": env.list("SD_FORUM_HOLD_WORDS", default=[]),
    "FORUM_HOLD_DOMAINS": env.list("SD_FORUM_HOLD_DOMAINS", default=[]),
    # Open flags that hide a post until a moderator reviews it (one flag by staff hides at once).
    "FORUM_FLAGS_TO_HIDE": env.int("SD_FORUM_FLAGS_TO_HIDE", default=3),
    # Days after the first reply that the author of an unanswered question is asked, once, to accept an answer.
    "FORUM_ACCEPT_REMINDER_DAYS": env.int("SD_FORUM_ACCEPT_REMINDER_DAYS", default=7),
    # Webhooks (docs/webhooks.md, "Retention"): a delivered or failed delivery and its attempts are
    # kept this many days after its last attempt (a failed one can be redelivered by hand until
    # then); an event, this many days after it was raised, once none of its deliveries is left.
    "WEBHOOK_LOG_DAYS": env.int("SD_WEBHOOK_LOG_DAYS", default=30),
    # Days a macro application's key (the API's Idempotency-Key, the ticket page form's one-time
    # id) is kept: the same request again within them applies nothing; afterwards it applies.
    "MACRO_APPLICATION_KEY_DAYS": env.int("SD_MACRO_APPLICATION_KEY_DAYS", default=7),
}
if SERVICEDESK["WEBHOOK_LOG_DAYS"] < 1:
    raise ImproperlyConfigured("SD_WEBHOOK_LOG_DAYS takes a whole number of days, 1 or more.")
if SERVICEDESK["MACRO_APPLICATION_KEY_DAYS"] < 1:
    raise ImproperlyConfigured("SD_MACRO_APPLICATION_KEY_DAYS takes a whole number of days, 1 or more.")

# Email channel: limits checked before a mail is parsed (over one, the mail is
# quarantined with the reason), our own addresses besides SUPPORT_ADDRESS and
# DEFAULT_FROM_EMAIL (mail from them is never acknowledged), and the CA file
# IMAP servers' certificates are checked against (empty: the system's).
# Outgoing SMTP: a worker keeps its connection open for the next message and
# closes it after SMTP_CONNECTION_IDLE_SECONDS unused (0: a connection per
# message) or after SMTP_CONNECTION_MAX_MESSAGES messages (docs/architecture.md,
# "Outbound delivery").
SERVICEDESK_EMAIL = {
    "MAX_BYTES": env.int("SD_EMAIL_MAX_BYTES", default=25 * 1024 * 1024),
    "MAX_HEADER_BYTES": env.int("SD_EMAIL_MAX_HEADER_BYTES", default=64 * 1024),
    "MAX_DEPTH": env.int("SD_EMAIL_MAX_DEPTH", default=20),
    "MAX_ADDRESSES": env.int("SD_EMAIL_MAX_ADDRESSES", default=500),
    "OWN_ADDRESSES": env.list("SD_EMAIL_OWN_ADDRESSES", default=[]),
    "IMAP_CA_FILE": env.str("SD_IMAP_CA_FILE", default=""),
    # One IMAP poll drains the mailbox for at most this many seconds (under the
    # minute between beat runs), checking and fetching this many UIDs per step.
    "IMAP_POLL_SECONDS": env.float("SD_IMAP_POLL_SECONDS", default=50.0),
    "IMAP_POLL_BATCH": env.int("SD_IMAP_POLL_BATCH", default=500),
    # Mails a poll stores per transaction (one disk flush for them all).
    "IMAP_COMMIT_BATCH": env.int("SD_IMAP_COMMIT_BATCH", default=50),
    "SMTP_CONNECTION_IDLE_SECONDS": env.int("SD_SMTP_CONNECTION_IDLE_SECONDS", default=30),
    "SMTP_CONNECTION_MAX_MESSAGES": env.int("SD_SMTP_CONNECTION_MAX_MESSAGES", default=100),
}
