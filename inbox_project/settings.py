"""Settings for Care Inbox: one module, driven by environment variables.

Without ``DATABASE_URL`` / ``REDIS_URL`` it runs embedded (SQLite under ``var/``, in-memory channel layer,
eager Celery); with them it uses PostgreSQL and Redis. Production defaults apply whenever ``DEBUG`` is off.
"""

import fnmatch
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not os.environ.get("PYTEST_VERSION") and not env_bool("ALLOW_INSECURE_SECRET", False):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Development and test only: a fixed, obviously-insecure key so sessions survive restarts.
    SECRET_KEY = "insecure-dev-key-care-inbox-do-not-use-in-production-7f3a9c1e5b2d4f6a8c0e"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "guardian",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "axes",
    "inbox_project.apps.ProjectSecurityConfig",
    "adminportal",
    "designer",
    "careportal",
    "inbox",
]

MIDDLEWARE = [
    # First: X-Forwarded-* only from TRUSTED_PROXIES, before anything (the https redirect, axes) reads them.
    "inbox_project.proxies.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "inbox_project.unstorable.RefuseUnstorableInputMiddleware",  # before anything reads a parameter
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "adminportal.idle.IdleTimeoutMiddleware",  # after auth and messages: signs out idle sessions
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout response.
    "axes.middleware.AxesMiddleware",
]

# Overridden only by benchmarks, to mount a bare baseline view beside the app (tests/benchmarks/bench_ingest.py).
ROOT_URLCONF = os.environ.get("ROOT_URLCONF") or "inbox_project.urls"
WSGI_APPLICATION = "inbox_project.wsgi.application"
ASGI_APPLICATION = "inbox_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "careportal.context_processors.portal",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
# DATABASE_URL is the application's role: it owns no table, may not alter, truncate or disable a trigger on any, and
# may only INSERT and SELECT audit events (``manage.py setup_db_roles``). MIGRATION_DATABASE_URL, optional, is the role
# that owns the schema: the commands that change the schema use it instead (docs/decisions.md, "Database roles").
# Set it only where those commands run (release step, make run/dev, CI), never in the web or worker environment.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# seed_demo is here because its PostgreSQL load sets indexes and foreign keys aside and moves sequences (DDL).
SCHEMA_OWNER_COMMANDS = frozenset({"migrate", "createcachetable", "setup_db_roles", "seed_demo"})


def management_command(argv: list[str]) -> str:
    """The command ``manage.py``/``django-admin``/``python -m django`` was started with; "" for any other process."""
    program = argv[0].replace("\\", "/") if argv else ""
    if len(argv) > 1 and program.endswith(("manage.py", "django-admin", "/django/__main__.py")):
        return argv[1]
    return ""


if os.environ.get("MIGRATION_DATABASE_URL") and management_command(sys.argv) in SCHEMA_OWNER_COMMANDS:
    if not DATABASE_URL:
        raise ImproperlyConfigured(
            "MIGRATION_DATABASE_URL is set without DATABASE_URL (the application's role)."
        )
    _owner = dj_database_url.parse(os.environ["MIGRATION_DATABASE_URL"])
    _runtime = dj_database_url.parse(DATABASE_URL)
    if (_owner["ENGINE"], _owner["NAME"]) != (_runtime["ENGINE"], _runtime["NAME"]):
        raise ImproperlyConfigured(
            "MIGRATION_DATABASE_URL must name the same database as DATABASE_URL "
            f"({_owner['NAME']!r} is not {_runtime['NAME']!r})."
        )
    DATABASE_URL = os.environ["MIGRATION_DATABASE_URL"]
if DATABASE_URL:
    # A connection pool per process (psycopg_pool) rather than persistent connections: under ASGI every request runs
    # in a thread of its own, and CONN_MAX_AGE kept one idle connection per finished request until PostgreSQL ran
    # out of connections (seen at 8 concurrent webhook senders). DATABASE_POOL_MAX_SIZE bounds each process.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # a sqlite:// URL has no pool
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("DATABASE_POOL_MIN_SIZE", 2)),
            "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", 20)),
            "timeout": int(os.environ.get("DATABASE_POOL_TIMEOUT_SECONDS", 10)),
        }
        # PostgreSQL's default random_page_cost (4) prices an index probe as a seek on a spinning disk, so it prefers
        # reading whole tables (206,000 candidate rows for a nurse's 761 patients) to a few hundred probes. Our data
        # lives on SSDs and mostly in memory; 1.1 is the usual setting there (docs/decisions.md).
        page_cost = os.environ.get("DATABASE_RANDOM_PAGE_COST", "1.1")
        DATABASES["default"]["OPTIONS"]["options"] = f"-c random_page_cost={float(page_cost)}"
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache ------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Each web process's real-time hub (careportal.hub) hears every change of the organisation on its process-specific
# channel, which channels-redis keeps in one list per process with every local socket's: give it room for a burst
# (the default capacity of 100 would drop hints while the process is busy).
LIVE_CHANNEL_CAPACITY = {"specific.*": 5_000}


def memory_layer_capacities(capacities: dict) -> list:
    """The in-memory layer reads ``channel_capacity`` as (compiled pattern, capacity) pairs: it does not compile globs
    as channels-redis does."""
    return [(re.compile(fnmatch.translate(glob)), capacity) for glob, capacity in capacities.items()]


if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels-redis waits for messages with a 5 s BZPOPMIN; redis-py 8 reads with a 5 s socket timeout by
            # default, so an idle socket's consumer died with "Timeout reading" after 5 s of silence. Read longer.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": "careinbox",
                "channel_capacity": LIVE_CHANNEL_CAPACITY,
            },
        }
    }
    CACHES = {"default": {"BACKEND": "inbox_project.cache.SharedPoolRedisCache", "LOCATION": REDIS_URL}}
    # Sessions are read from the shared cache (one Redis GET) and written through to the database, which stays
    # their record. Only with Redis: a per-process memory cache would keep a signed-out session alive elsewhere.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CELERY_BROKER_URL = REDIS_URL
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"channel_capacity": memory_layer_capacities(LIVE_CHANNEL_CAPACITY)},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

# --- Email ------------------------------------------------------------------------------------------------
# EMAIL_URL: smtp://user:pass@host:587?tls=1, console://, locmem:// (default console in embedded mode).
EMAIL_URL = os.environ.get("EMAIL_URL", "console://")


def _email_settings(url: str) -> dict:
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    backends = {
        "console": "django.core.mail.backends.console.EmailBackend",
        "locmem": "django.core.mail.backends.locmem.EmailBackend",
        "smtp": "django.core.mail.backends.smtp.EmailBackend",
        "smtps": "django.core.mail.backends.smtp.EmailBackend",
    }
    if parts.scheme not in backends:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme must be one of {sorted(backends)}, not {parts.scheme!r}"
        )
    query = parse_qs(parts.query)
    return {
        "EMAIL_BACKEND": backends[parts.scheme],
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": query.get("tls", ["0"])[0] in {"1", "true"},
        "EMAIL_USE_SSL": parts.scheme == "smtps",
    }


globals().update(_email_settings(EMAIL_URL))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Care Team <care@careinbox.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Auth -------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "adminportal.User"
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username+address before any password is checked.
    "inbox_project.security.SignInLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous visitors see nothing
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "careportal:home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18N / time ----------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files --------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    # Uploaded patient documents: never served from a public URL, only through access-checked views.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ.get("MEDIA_ROOT", str(VAR_DIR / "media")), "base_url": None},
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
MAX_UPLOAD_BYTES = int(os.environ.get("MAX_UPLOAD_BYTES", 25 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = 30 * 1024 * 1024

# --- Security ----------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Reverse proxies in front of the app (IPs or CIDRs, comma-separated; default none). Only from these peers are
# X-Forwarded-For and X-Forwarded-Proto believed (inbox_project.proxies strips them from anyone else); the client
# address is then the right-most X-Forwarded-For entry that is not a trusted proxy, REMOTE_ADDR otherwise.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", 12 * 3600))
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content-Security-Policy (django-csp 4): no inline script or style anywhere, no eval (htmx is told so by the
# <meta name="htmx-config"> of every base layout). 'self' also matches ws:/wss: to the page's own host and port
# (CSP Level 3), which is what the Care Portal and chat sockets use; no other host is ever contacted.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "media-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
    },
}

# --- Sign-in lockout (django-axes) -------------------------------------------------------------------------
# After AXES_FAILURE_LIMIT failed sign-ins for one username from one address, that pair is locked out for
# AXES_COOLOFF_MINUTES (a colleague on the same network, or the same person elsewhere, can still sign in); a
# successful sign-in clears the count. Attempts and lockouts are listed in Django admin and in the audit log.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "inbox_project.security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# The address a lockout keys on follows TRUSTED_PROXIES (django-ipware is not installed; axes calls this instead).
AXES_CLIENT_IP_CALLABLE = "inbox_project.proxies.client_ip"

# --- Logging: structured JSON lines on stdout ------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "INFO"},
        # Sign-ins are in the audit log; axes' own lines for every successful one are noise. Lockouts and
        # failures (WARNING) still show.
        "axes": {"level": "WARNING"},
    },
}

# --- Product settings ------------------------------------------------------------------------------------
# Demo features (the patient simulator at /demo/patient/, generated webhook secrets): on with DEBUG, or with
# DEMO_MODE=1 for a demo served with DEBUG off. Never on in production (DEBUG off, DEMO_MODE unset).
DEMO_MODE = env_bool("DEMO_MODE", False)
DEMO_ENABLED = DEBUG or DEMO_MODE
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "care-inbox-demo")
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
CARE_TEAM_NAME = os.environ.get("CARE_TEAM_NAME", "your care team")
SMS_BACKEND = os.environ.get("SMS_BACKEND", "inbox.delivery.ConsoleSmsBackend")

# --- Inbound ingestion (email webhook, Twilio, SMTP receiver, sweeper) ------------------------------------
# INBOUND_EMAIL_SECRET signs POST /hooks/email/inbound/ (header X-Inbox-Signature: sha256=<hex HMAC-SHA256 of the
# body>); empty = the webhook answers 503 (in demo mode a generated secret fills it). TWILIO_AUTH_TOKEN verifies X-Twilio-Signature and, with
# TWILIO_ACCOUNT_SID, sends SMS (SMS_BACKEND=inbox.delivery.TwilioSmsBackend) and fetches MMS media.
INBOUND_EMAIL_SECRET = os.environ.get("INBOUND_EMAIL_SECRET", "")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
if DEMO_ENABLED and not (INBOUND_EMAIL_SECRET and TWILIO_AUTH_TOKEN):
    # Demo only (never with DEBUG off and DEMO_MODE unset): random secrets made once and kept in
    # VAR_DIR/demo-secrets.json, so `make run`'s webhooks (and the patient simulator) work out of the box.
    from inbox_project.demo_secrets import demo_secrets

    _demo = demo_secrets(VAR_DIR)
    INBOUND_EMAIL_SECRET = INBOUND_EMAIL_SECRET or _demo["INBOUND_EMAIL_SECRET"]
    TWILIO_AUTH_TOKEN = TWILIO_AUTH_TOKEN or _demo["TWILIO_AUTH_TOKEN"]
# The only hosts MMS media is fetched from (https only; "*.example.com" matches its subdomains): a MediaUrl elsewhere
# is not requested and the SMS is filed with a note. Redirects to other hosts are followed without credentials.
TWILIO_MEDIA_HOSTS = env_list("TWILIO_MEDIA_HOSTS", "api.twilio.com,*.twiliocdn.com")
# Where the SMTP receiver listens: the Procfile's `smtp` process, or inside the web process under `make run`
# (INBOX_EMBEDDED_SMTP=1, set by the Makefile's run target; inbox_project.embedded).
SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
SMTP_PORT = int(os.environ.get("SMTP_PORT", 2525))
# /readyz also checks that an SMTP receiver accepts connections at host:port (e.g. the Procfile's smtp process);
# empty = only the receiver embedded in this process, when it runs (inbox_project.embedded).
READYZ_SMTP = os.environ.get("READYZ_SMTP", "")
INBOUND_MAX_EMAIL_BYTES = int(os.environ.get("INBOUND_MAX_EMAIL_BYTES", 25 * 1024 * 1024))
INBOUND_MAX_ATTACHMENT_BYTES = int(os.environ.get("INBOUND_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024))
# Unprocessed raw items older than this are re-enqueued by the beat sweeper (every INBOUND_SWEEP_INTERVAL_SECONDS).
INBOUND_SWEEP_GRACE_SECONDS = int(os.environ.get("INBOUND_SWEEP_GRACE_SECONDS", 60))
INBOUND_SWEEP_INTERVAL_SECONDS = int(os.environ.get("INBOUND_SWEEP_INTERVAL_SECONDS", 60))
CELERY_BEAT_SCHEDULE = {
    "sweep-unprocessed-inbound": {
        "task": "inbox.tasks.sweep_unprocessed",
        "schedule": float(INBOUND_SWEEP_INTERVAL_SECONDS),
        # a sweep that waited past the next one is dropped, not run twice
        "options": {"expires": max(1, INBOUND_SWEEP_INTERVAL_SECONDS - 5)},
    },
}

# --- Real time (the Care Portal WebSocket) ------------------------------------------------------------------
# A tab says it is still there every LIVE_HEARTBEAT_SECONDS (and treats a socket that stays silent after it as
# dead); "viewing" lasts PRESENCE_TTL_SECONDS after the last heartbeat, "typing…" TYPING_TTL_SECONDS after the last
# keystroke reported.
LIVE_HEARTBEAT_SECONDS = int(os.environ.get("LIVE_HEARTBEAT_SECONDS", 10))
PRESENCE_TTL_SECONDS = int(os.environ.get("PRESENCE_TTL_SECONDS", 30))
TYPING_TTL_SECONDS = int(os.environ.get("TYPING_TTL_SECONDS", 6))
# Threads per web process for the real-time hub's and sockets' database work (off the sync views' thread).
LIVE_DB_THREADS = int(os.environ.get("LIVE_DB_THREADS", 4))

# --- Inbox API (/api/v1/, Django REST framework) and outbound webhooks -------------------------------------------
# Token (``Authorization: Bearer …``) or session; the Inbox API policy is checked per view. Errors are RFC 9457
# problem details. Throttling is per token (per user for a session); rates are "<n>/<second|minute|hour|day>".
API_RATE_READ = os.environ.get("API_RATE_READ", "600/minute")
API_RATE_WRITE = os.environ.get("API_RATE_WRITE", "120/minute")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "inbox.api.authentication.BearerTokenAuthentication",
        "inbox.api.authentication.PortalSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["inbox.api.permissions.HoldsInboxApi"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["inbox.api.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api-read": API_RATE_READ, "api-write": API_RATE_WRITE},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "inbox.api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Care Inbox API",
    "DESCRIPTION": "Everything the Inbox page does, for integrations. See README → Inbox API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: nothing is fetched from a CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CommunicationChannelEnum": "inbox.models.Channel",
        "TemplateChannelEnum": "designer.models.TemplateChannel",
    },
}
# Webhook deliveries: attempts per delivery (exponential backoff from WEBHOOK_RETRY_BASE_SECONDS), consecutive
# failed deliveries before a subscription is paused, request timeout. Plain http:// is refused except to
# 127.0.0.1 when DEBUG is on or WEBHOOK_ALLOW_LOCAL_HTTP is set (tests' local receiver).
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", 6))
WEBHOOK_RETRY_BASE_SECONDS = int(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS", 30))
WEBHOOK_PAUSE_AFTER_FAILURES = int(os.environ.get("WEBHOOK_PAUSE_AFTER_FAILURES", 10))
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", 10))
WEBHOOK_ALLOW_LOCAL_HTTP = env_bool("WEBHOOK_ALLOW_LOCAL_HTTP", False)
# Webhook targets resolving to loopback, private, link-local, multicast or reserved addresses are refused (SSRF),
# at subscription and at delivery, unless inside one of these networks (CIDRs, comma-separated; default none —
# development and tests allow 127.0.0.1/32 here for a local receiver).
WEBHOOK_ALLOWED_PRIVATE_NETWORKS = env_list("WEBHOOK_ALLOWED_PRIVATE_NETWORKS", "")
CELERY_IMPORTS = ["inbox.api.tasks"]
CELERY_BEAT_SCHEDULE["sweep-webhook-retries"] = {
    "task": "inbox.api.tasks.sweep_webhook_retries",
    "schedule": 300.0,
    "options": {"expires": 290},
}
