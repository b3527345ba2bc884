"""Atrium settings: one module, every value from the environment (see README, "Configuration").

Embedded default (nothing set): SQLite file, in-memory channel layer, local-memory cache, Celery
tasks run eagerly in-process. Production: DATABASE_URL (PostgreSQL) and REDIS_URL (channel layer,
cache, Celery broker).
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_list, env_str, persistent_secret, token

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("ATRIUM_DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = persistent_secret("SECRET_KEY", DATA_DIR, token)
# Fernet keys for secrets at rest (API keys). Comma-separated: the first encrypts, all decrypt,
# so a key can be rotated by prepending a new one (then `manage.py rotate_secrets`).
ENCRYPTION_KEYS = [
    key.strip()
    for key in persistent_secret(
        "ATRIUM_ENCRYPTION_KEYS", DATA_DIR, lambda: Fernet.generate_key().decode()
    ).split(",")
    if key.strip()
]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# The portal's name in emails ("Hello from Atrium!") and the sites framework (set by `bootstrap`).
SITE_NAME = env_str("SITE_NAME", "Atrium")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "channels",
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.usersessions",
    "auditlog",
    "portal",
    "accounts",
    "endpoints",
    "billing",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "accounts.middleware.RequireTwoFactorMiddleware",
    "accounts.middleware.AdminAuditMiddleware",
]

ROOT_URLCONF = "portal.urls"
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
                "django.template.context_processors.i18n",
                "portal.ui.ui",
            ],
        },
    },
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "portal.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'atrium.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Concurrent writers (daphne + eager tasks) wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]  # + accounts.ldap.AtriumLDAPBackend when AUTH_LDAP_SERVER_URI is set (see "Accounts" below)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
SITE_ID = 1

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [
    ("en", "English"),
    ("zh-hans", "简体中文"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("fr", "Français"),
    ("ja", "日本語"),
    ("ru", "Русский"),
    ("pt-br", "Português (Brasil)"),
    ("ar", "العربية"),
]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
# Atrium's own translations (sign-in pages, accounts messages): locale/<lang>/LC_MESSAGES/django.po,
# compiled .mo files committed. They take precedence over Django's and allauth's catalogues.
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # the language switcher's choice outlives the browser session
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
WHITENOISE_USE_FINDERS = True  # serve app static files without requiring collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "portal.storage.HashedStaticFiles"},  # hashed names once collected
}

# --- Redis: channel layer, cache, Celery broker -------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", "atrium")},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_PREFIX", "atrium"),
        }
    }
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# --- Security ----------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and SITE_URL.startswith("https"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS when the portal is served over https (sent on https responses only; see BEHIND_TLS_PROXY).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if SITE_URL.startswith("https://") else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Content-Security-Policy on every page (django-csp): scripts, styles and everything else from
# Atrium's own origin only — no inline script or style (the admin, allauth's pages and the API docs
# need none). data: images are allauth's TOTP QR code. No form-action: the SSO button's form
# redirects to the IdP, which form-action would block.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],  # the chat websocket is same-origin
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Logging: secrets never reach a log line (see portal.logging.RedactSecretsFilter) ------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "portal.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx logs every request URL at INFO; provider URLs may carry keys in the query string
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Atrium ------------------------------------------------------------------------------------
# Outbound requests to LLM providers (endpoints.http).
UPSTREAM_CONNECT_TIMEOUT = float(env_str("UPSTREAM_CONNECT_TIMEOUT", "10"))
UPSTREAM_READ_TIMEOUT = float(env_str("UPSTREAM_READ_TIMEOUT", "120"))
MODELS_CACHE_SECONDS = env_int("MODELS_CACHE_SECONDS", 300)
# Threads a daphne process runs the chat's database work on (chat.db.on_db). One by default:
# ORM work holds the GIL, so more threads take time from the event loop that streams the answers
# (measured: 50 streams, first token p50 ~450 ms with 4 threads, ~20 ms with 1) without adding
# throughput. More only help when the database is far away (round trips of milliseconds).
CHAT_DB_THREADS = env_int("CHAT_DB_THREADS", 1)
if CHAT_DB_THREADS < 1:
    raise ImproperlyConfigured("CHAT_DB_THREADS must be at least 1.")
# Let user-provided base URLs reach loopback/private addresses (off: SSRF protection).
ALLOW_PRIVATE_USER_BASE_URLS = env_bool("ALLOW_PRIVATE_USER_BASE_URLS", False)

# --- Accounts: allauth, OIDC SSO, LDAP, API keys, audit log (README "Accounts and sign-in") ------
from accounts.conf import ldap_settings, oidc_apps  # noqa: E402  (reads the environment only)

ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
# Local sign-up (when an admin switches it on) always needs a verified address.
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = env_str("ACCOUNT_EMAIL_SUBJECT_PREFIX", "[Atrium] ")
# allauth's rate limits (login_failed, signup, reset...); "action": "limit" pairs override them.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("LOGIN_FAILED_RATE_LIMIT", "10/m/ip,5/300s/key"),
}
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Atrium")
MFA_TOTP_TOLERANCE = 1  # also accept the previous/next 30-second code (phone clock skew)
SOCIALACCOUNT_AUTO_SIGNUP = True
# The company IdP vouches for its users' addresses: link an SSO login to the local account with
# the same verified email instead of creating a second one.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # Atrium's subclass checks the nonce and always verifies the ID token signature.
        "provider_class": "accounts.oidc.provider.AtriumOpenIDConnectProvider",
        "OAUTH_PKCE_ENABLED": True,
        "APPS": oidc_apps(),
    }
}

# Email: the console in the embedded default; SMTP when EMAIL_HOST is set.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", EMAIL_PORT == 465)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Atrium <atrium@localhost>")

# LDAP / Active Directory (django-auth-ldap): on when AUTH_LDAP_SERVER_URI is set.
globals().update(ldap_settings())
if AUTH_LDAP_SERVER_URI:  # noqa: F821  (set by ldap_settings)
    AUTHENTICATION_BACKENDS.append("accounts.ldap.AtriumLDAPBackend")

# Audit log of admin changes (django-auditlog; only changes made through the admin are kept).
AUDITLOG_INCLUDE_ALL_MODELS = False
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_MASK_CALLABLE = "portal.crypto.mask"
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {
        "model": "accounts.user",
        "exclude_fields": ["password", "last_login"],
        "m2m_fields": ["groups", "user_permissions"],
    },
    {"model": "accounts.role", "m2m_fields": ["allowed_endpoints", "allowed_model_specs"]},
    "accounts.rolegroup",
    "accounts.signinpolicy",
    {"model": "accounts.apikey", "exclude_fields": ["key_hash", "last_used_at"]},
    {"model": "endpoints.endpoint", "mask_fields": ["api_key", "headers"]},
    "endpoints.endpointmodel",
    "endpoints.modelspec",
    "billing.balance",
    "billing.transaction",
    # admins may only delete conversations (chat/admin.py); the entry names the owner and title
    {"model": "chat.conversation", "exclude_fields": ["params", "system_prompt"]},
    "portal.portalsettings",
    {"model": "socialaccount.socialapp", "mask_fields": ["secret", "key"]},
)
API_KEY_PREFIX = "atr_"

# --- Billing (billing/) -------------------------------------------------------------------------
# How long a request that passed the balance check holds its estimated cost if it never reports
# its usage back (a crashed worker); normally record_usage releases the hold at once.
BILLING_HOLD_SECONDS = env_int("BILLING_HOLD_SECONDS", 900)
# How often Celery beat looks for balances whose auto-refill is due (users are also refilled at
# check time, so this only has to be often enough for balances shown in the UI).
BILLING_REFILL_CHECK_SECONDS = env_int("BILLING_REFILL_CHECK_SECONDS", 300)
CELERY_BEAT_SCHEDULE["billing-auto-refill"] = {
    "task": "billing.tasks.refill_due_balances",
    "schedule": float(BILLING_REFILL_CHECK_SECONDS),
}

# --- Chat: answers whose process died mid-stream (chat/recovery.py) -------------------------------
# An answer still being written whose conversation has no live claim (a live process refreshes it
# every 10 s) and that was not written for CHAT_RECOVERY_GRACE_SECONDS belongs to a process that
# died: Celery beat, every CHAT_RECOVERY_CHECK_SECONDS, keeps its text, marks it interrupted, bills
# an estimate and releases its balance hold.
CHAT_RECOVERY_GRACE_SECONDS = env_int("CHAT_RECOVERY_GRACE_SECONDS", 120)
CHAT_RECOVERY_CHECK_SECONDS = env_int("CHAT_RECOVERY_CHECK_SECONDS", 60)
if CHAT_RECOVERY_GRACE_SECONDS < 1 or CHAT_RECOVERY_CHECK_SECONDS < 1:
    raise ImproperlyConfigured(
        "CHAT_RECOVERY_GRACE_SECONDS and CHAT_RECOVERY_CHECK_SECONDS must be at least 1 (seconds)."
    )
CELERY_BEAT_SCHEDULE["chat-recover-interrupted-answers"] = {
    "task": "chat.tasks.recover_interrupted_answers",
    "schedule": float(CHAT_RECOVERY_CHECK_SECONDS),
}

# --- Chat: temporary chats (chat/temporary.py) ---------------------------------------------------
# The retention window is set by admins (portal settings); this is only how often beat deletes the
# temporary chats past it.
CHAT_TEMPORARY_PURGE_SECONDS = env_int("CHAT_TEMPORARY_PURGE_SECONDS", 3600)
if CHAT_TEMPORARY_PURGE_SECONDS < 1:
    raise ImproperlyConfigured("CHAT_TEMPORARY_PURGE_SECONDS must be at least 1 (seconds).")
CELERY_BEAT_SCHEDULE["chat-purge-temporary-chats"] = {
    "task": "chat.tasks.purge_temporary_chats",
    "schedule": float(CHAT_TEMPORARY_PURGE_SECONDS),
}
