"""Settings for leadmarket: one module, everything that varies comes from the environment.

Embedded defaults make a laptop work with nothing installed (SQLite, in-process tasks,
local-memory cache). Production secrets have no silent default: with DJANGO_DEBUG off,
DJANGO_SECRET_KEY must be set. `.env.example` documents every variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"

INSTALLED_APPS = [
    "leadmarket.apps.LeadmarketConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "csp",
    "agencies",
    "subscriptions",
    "portals",
    "leads",
    "audit",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "leadmarket.requestid.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "leadmarket.api.middleware.ApiBodyLimitMiddleware",
    # Sessions, auth and messages serve the admin site; /api/ skips them (sitemiddleware.py).
    "leadmarket.sitemiddleware.SiteSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "leadmarket.sitemiddleware.SiteAuthenticationMiddleware",
    "leadmarket.sitemiddleware.SiteMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "leadmarket.urls"
WSGI_APPLICATION = "leadmarket.wsgi.application"
APPEND_SLASH = False  # API paths have no trailing slash and a POST cannot follow a redirect
CSRF_FAILURE_VIEW = "leadmarket.api.views.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "leadmarket" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# django-prometheus's wrappers of the same backends count queries and their errors.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)
if DATABASES["default"]["ENGINE"].endswith(".postgresql"):
    # The same, health-checking a reused connection only after it sat idle (see its module).
    DATABASES["default"]["ENGINE"] = "leadmarket.postgresql"
    # Persistent connections: no connect per request under gunicorn or Celery.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django's cursors bind on the client and never prepare; the webhook's ingest asks for
    # prepared statements (leadmarket/prepared.py), which psycopg refuses while this is None.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)
else:
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", default="leadmarket")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "leadmarket.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ------------------------------------------------------------------------------
# Without REDIS_URL tasks run in-process right after the commit that enqueued them.

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep LOGGING: JSON lines with request ids in workers too
# Celery's Django fixup closes the database connections around every task unless this is
# set, and then only every this many tasks: a new PostgreSQL backend per push or
# distribution task otherwise. Between those, leadmarket.celery gives each task a web
# request's connection handling (CONN_MAX_AGE, health check).
CELERY_DB_REUSE_MAX = 1000
# Pushes wait on FCM (a task of 100 can take seconds) and have a queue of their own, so a
# burst of them never delays a distribution run; a worker takes both queues unless told
# otherwise (`celery worker -Q celery,push`; dedicated push workers: `-Q push`).
CELERY_TASK_ROUTES = {"agencies.tasks.push_notifications": {"queue": "push"}}
# A broker that is down must not hang a request that enqueues after commit.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2, "max_retries": 1}
# Periodic work; each entry is idempotent and also runnable as a management command.
CELERY_BEAT_SCHEDULE = {
    "sweep-unpushed-notifications": {"task": "agencies.tasks.sweep_unpushed_notifications", "schedule": 60.0},
    # Renews subscriptions whose period ended and expires those cancelled at period end.
    # Agency operations settle their own subscription first, so the interval only bounds
    # how late an untouched subscription is renewed.
    "renew-subscriptions": {"task": "subscriptions.renew_subscriptions", "schedule": timedelta(minutes=15)},
}

# --- Auth --------------------------------------------------------------------------------

AUTH_USER_MODEL = "agencies.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": env("JWT_SIGNING_KEY", default=SECRET_KEY),
    "USER_AUTHENTICATION_RULE": "agencies.authentication.user_may_authenticate",
}

# New agencies start `active` unless staff must approve them first.
AGENCY_REQUIRES_APPROVAL = env.bool("AGENCY_REQUIRES_APPROVAL", default=False)
# Failed logins allowed before a 429: per account from one address (a user mistyping), per
# address across accounts (one guesser), and per account across addresses (a distributed
# guess, loose enough that strangers cannot easily lock a real agency out).
LOGIN_FAILURE_RATE = env("LOGIN_FAILURE_RATE", default="5/5m")
LOGIN_FAILURE_RATE_PER_IP = env("LOGIN_FAILURE_RATE_PER_IP", default="20/5m")
LOGIN_FAILURE_RATE_PER_ACCOUNT = env("LOGIN_FAILURE_RATE_PER_ACCOUNT", default="50/h")

# --- Notifications -----------------------------------------------------------------------

# Path of a Firebase service-account JSON file; unset: pushes are only logged.
FCM_CREDENTIALS_FILE = env("FCM_CREDENTIALS_FILE", default="")
# How long before an offer expires the agency gets a reminder.
OFFER_REMINDER_MINUTES = env.int("OFFER_REMINDER_MINUTES", default=5)
# Attempts at a push before it is marked failed (transient FCM errors in between).
PUSH_MAX_ATTEMPTS = env.int("PUSH_MAX_ATTEMPTS", default=7)
# How long a push waits for others to go in the same task: a push run starts this long
# after the first notification that finds none queued, and takes all that are owed then.
PUSH_DELAY_SECONDS = env.float("PUSH_DELAY_SECONDS", default=0.5)

# --- API ---------------------------------------------------------------------------------

API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
# Requests per client (the user when authenticated, else the address) across the API,
# and per address for registration and token refresh. Counted in the cache (Redis).
API_RATE_LIMIT = env("API_RATE_LIMIT", default="600/m")
REGISTRATION_RATE_LIMIT = env("REGISTRATION_RATE_LIMIT", default="20/h")
TOKEN_REFRESH_RATE_LIMIT = env("TOKEN_REFRESH_RATE_LIMIT", default="60/m")
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# Number of proxies in front of the app whose X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["leadmarket.api.envelope.EnvelopeRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["agencies.authentication.AgencyJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "leadmarket.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["leadmarket.api.filters.FilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["leadmarket.api.throttling.ApiRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "leadmarket.api.exceptions.envelope_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "PAGE_SIZE": 20,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "leadmarket API",
    "DESCRIPTION": "Lead marketplace: webhook ingestion, fair distribution, agency and staff APIs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public; a staff or agency token sent along is simply ignored.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "portalApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "The portal's API key (or the body field the portal declares).",
            }
        }
    },
    # Several models have a `status` or `reason`; name each choice set after its meaning.
    "ENUM_NAME_OVERRIDES": {
        "LeadStatusEnum": "leads.models.LeadStatus",
        "OfferStatusEnum": "leads.models.OfferStatus",
        "RejectReasonEnum": "leads.models.RejectReason",
        "AgencyStatusEnum": "agencies.models.AgencyStatus",
        "SubscriptionStatusEnum": "subscriptions.models.SubscriptionStatus",
        "LedgerEntryReasonEnum": "subscriptions.models.EntryReason",
        "ReceptionOutcomeEnum": "portals.models.ReceptionOutcome",
    },
    "PREPROCESSING_HOOKS": ["leadmarket.api.schema.drop_trailing_slash_aliases"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "leadmarket.api.schema.wrap_in_envelope",
    ],
}

# --- Webhooks and leads ------------------------------------------------------------------

# Largest webhook body, in bytes (413 above it); the webhook view enforces it itself.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
# Failed webhook authentications allowed per client address before a 429.
WEBHOOK_AUTH_FAILURE_RATE_PER_IP = env("WEBHOOK_AUTH_FAILURE_RATE_PER_IP", default="60/m")
# Seconds a process keeps a portal's configuration and key hashes in memory.
PORTAL_CACHE_SECONDS = env.int("PORTAL_CACHE_SECONDS", default=5)
# Largest payload stored in a reception's audit row, in bytes (larger ones are marked truncated).
RECEPTION_PAYLOAD_MAX_BYTES = env.int("RECEPTION_PAYLOAD_MAX_BYTES", default=64 * 1024)
# A webhook queues a distribution run to start this many seconds later, so that the leads of
# a burst share one run and one batch (a run per few leads cost the worker more CPU than
# the webhooks themselves); it bounds how long a new lead waits for its offer.
DISTRIBUTION_DELAY_SECONDS = env.float("DISTRIBUTION_DELAY_SECONDS", default=0.5)
# Webhooks queue a distribution run; this one catches up after a broker or worker outage.
CELERY_BEAT_SCHEDULE["distribute-new-leads"] = {"task": "leads.tasks.distribute_new_leads", "schedule": 30.0}

# --- Distribution ------------------------------------------------------------------------

# Minutes an agency has to accept or reject an offered lead before it moves on.
OFFER_TIMEOUT_MINUTES = env.int("OFFER_TIMEOUT_MINUTES", default=30)
CELERY_BEAT_SCHEDULE["redistribute-leads"] = {"task": "leads.tasks.redistribute_leads", "schedule": 60.0}
# The minute's redistribution runs as this many tasks over disjoint sets of ZIP codes, which
# worker processes take side by side: about the number of worker processes that should share
# a backlog (README, Scaling out).
REDISTRIBUTION_PARTITIONS = env.int("REDISTRIBUTION_PARTITIONS", default=2)
CELERY_BEAT_SCHEDULE["remind-expiring-offers"] = {"task": "leads.tasks.remind_expiring_offers", "schedule": 60.0}

# --- Benchmark ---------------------------------------------------------------------------

# Mounts the bench-only ceiling views (bench/ceilings.py) at /api/bench/. Only `bench/run.py`
# turns it on, for its own server; never in production.
BENCH_CEILINGS = env.bool("BENCH_CEILINGS", default=False)

# --- Everything else ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# JSON lines in production for the log pipeline, readable lines in development; both
# carry the request id (also set into Celery tasks the request enqueued).
LOG_FORMAT = env("LOG_FORMAT", default="console" if DEBUG else "json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "leadmarket.requestid.RequestIdFilter"}},
    "formatters": {
        "console": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print each of its records a second time.
        "django": {"handlers": [], "propagate": True},
        # A line per task in workers, unless LOG_LEVEL asks for less; in-process tasks (no
        # REDIS_URL) would interleave one with the server's output.
        "celery.app.trace": {"level": LOG_LEVEL if REDIS_URL else "WARNING"},
    },
}

# --- Security ----------------------------------------------------------------------------
# Production defaults are strict; behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER.

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health/"]  # load-balancer probes speak plain HTTP
if env.bool("BEHIND_TLS_PROXY", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Joining the browsers' preload list is a decision per domain (SECURE_HSTS_PRELOAD), not a default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The agency list's covering index (INCLUDE) is PostgreSQL's; SQLite builds it on the key
    # columns alone, which is all a development database needs.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # Redoc and Swagger UI inject styles
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# --- Observability -----------------------------------------------------------------------

# /metrics: with a token, Prometheus sends it as a bearer token; without one, only these
# networks may scrape.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Loopback by default: behind a proxy, every request comes from the proxy's private address.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
