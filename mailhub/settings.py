"""MailHub settings: every value is read from the environment here, and only here.

The defaults run on a bare machine (SQLite and a file broker under ``var/``); production sets
DATABASE_URL, CELERY_BROKER_URL, DJANGO_SECRET_KEY and the relay.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from mailhub.devsecret import dev_secret_key

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything MailHub writes on disk (SQLite file, file broker, logs, dev relay mail, media).
VAR_DIR = Path(env.str("MAILHUB_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set: set it in the environment "
            "(or DJANGO_DEBUG=1 for a development key)."
        )
    # Development only: a random key made on first start and kept in var/ (one per install).
    SECRET_KEY = dev_secret_key(path=VAR_DIR / "dev-secret-key")
# Older secret keys still accepted after a rotation (sessions, signed links, stored secrets).
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
# The key relay passwords are encrypted with (derived); empty: derived from DJANGO_SECRET_KEY.
MAILHUB_ENCRYPTION_KEY = env.str("MAILHUB_ENCRYPTION_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL of the web app, used in links inside outgoing mail (unsubscribe, records).
MAILHUB_BASE_URL = env.str("MAILHUB_BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    # Counts failed logins in the database and refuses a locked-out account or address.
    "axes",
    "mailhub",
    "chatter",
    "outbox",
    "inbound",
    "fetch",
    "campaigns",
    "records",
    "diagnostics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Serves static files from the app itself (gunicorn in compose), no CDN, no separate server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during login into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailhub.urls"
WSGI_APPLICATION = "mailhub.wsgi.application"

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
                "mailhub.context_processors.topbar",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mailhub.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web, the worker and the listener share one SQLite file.
    # IMMEDIATE: a transaction takes the write lock when it begins, waiting up to the timeout.
    # A deferred one that reads and then writes fails at once with "database is locked" when
    # another process committed in between (the busy timeout does not apply to that upgrade).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-mailhub.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# The axes backend first: it refuses a locked-out login before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Brute force: 10 failed logins for one account, or from one client address, within the cool-off
# lock that account or address for the cool-off (both the site's and the admin's login form).
AXES_FAILURE_LIMIT = env.int("MAILHUB_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("MAILHUB_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success does not wipe the count: an attacker with an account of their own could otherwise
# reset their address's count between guesses at someone else's password.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "mailhub.lockout.lockout_response"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"
# Form text up to 16 MB reaches the views, which refuse text over ``mailhub.text_limits`` with a
# form error that keeps it (Django's 2.5 MB default answered before any view: the text was lost).
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- HTTPS: on by default in production (DJANGO_DEBUG=0), each one settable ---------------------
# Plain HTTP is redirected to HTTPS, except the health probe (orchestrators call it over HTTP
# inside their network).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a TLS-terminating proxy: trust its X-Forwarded-Proto (only when the proxy sets it).
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
# Content-Security-Policy (Django's ContentSecurityPolicyMiddleware): scripts and styles only
# from our own static files, never inline; no plugins, no framing, forms post only to us.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
# The received-mail page may show remote images when the reader asks for them ("Show images";
# the sanitiser decides which ``src`` survive); everything else as above.
MAILHUB_CSP_REMOTE_IMAGES = {**SECURE_CSP, "img-src": [CSP.SELF, "data:", "https:", "http:"]}
# A campaign's preview shows the newsletter as it will be mailed: its remote images and inline
# style attributes (mail clients know no stylesheets). Scripts stay refused.
MAILHUB_CSP_MAIL_PREVIEW = {**MAILHUB_CSP_REMOTE_IMAGES, "style-src-attr": [CSP.UNSAFE_INLINE]}

# --- Celery -------------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange tables too, or kombu writes them to ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Mail domain, relay and listener ------------------------------------------------------------
# The domain our Message-IDs, bounce addresses and default sender live on.
MAILHUB_MAIL_DOMAIN = env.str("MAILHUB_MAIL_DOMAIN", default="mailhub.test")
MAILHUB_DEFAULT_FROM = env.str(
    "MAILHUB_DEFAULT_FROM", default=f"notifications@{MAILHUB_MAIL_DOMAIN}"
)
# The relay used when no MailServer row matches (odoo-behaviour §9.3 step 5).
MAILHUB_RELAY_HOST = env.str("MAILHUB_RELAY_HOST", default="127.0.0.1")
MAILHUB_RELAY_PORT = env.int("MAILHUB_RELAY_PORT", default=1025)
MAILHUB_RELAY_SECURITY = env.str("MAILHUB_RELAY_SECURITY", default="none")  # none|starttls|ssl
MAILHUB_RELAY_USER = env.str("MAILHUB_RELAY_USER", default="")
MAILHUB_RELAY_PASSWORD = env.str("MAILHUB_RELAY_PASSWORD", default="")
MAILHUB_RELAY_TIMEOUT = env.float("MAILHUB_RELAY_TIMEOUT", default=60.0)
# The inbound listener (manage.py runsmtpd).
MAILHUB_SMTPD_LISTEN = env.str("MAILHUB_SMTPD_LISTEN", default="127.0.0.1:2525")
MAILHUB_SMTPD_MAX_SIZE = env.int("MAILHUB_SMTPD_MAX_SIZE", default=25 * 1024 * 1024)
MAILHUB_SMTPD_MAX_RECIPIENTS = env.int("MAILHUB_SMTPD_MAX_RECIPIENTS", default=100)
MAILHUB_SMTPD_MAX_CONNECTIONS = env.int("MAILHUB_SMTPD_MAX_CONNECTIONS", default=200)
MAILHUB_SMTPD_MAX_CONNECTIONS_PER_IP = env.int("MAILHUB_SMTPD_MAX_CONNECTIONS_PER_IP", default=60)
MAILHUB_SMTPD_MAX_COMMANDS = env.int("MAILHUB_SMTPD_MAX_COMMANDS", default=1000)
# Message data held at once over all inbound connections; past it new data gets 452 4.3.1.
MAILHUB_SMTPD_MEMORY_BUDGET = env.int("MAILHUB_SMTPD_MEMORY_BUDGET", default=128 * 1024 * 1024)
# RFC 5321 §4.5.3.2.7: 5 minutes without progress; and a cap on any one session.
MAILHUB_SMTPD_IDLE_TIMEOUT = env.float("MAILHUB_SMTPD_IDLE_TIMEOUT", default=300.0)
MAILHUB_SMTPD_SESSION_LIFETIME = env.float("MAILHUB_SMTPD_SESSION_LIFETIME", default=1800.0)
# STARTTLS certificate chain and key (PEM files); empty: a self-signed pair under var/tls in
# DEBUG (the quick start), no STARTTLS otherwise.
MAILHUB_SMTPD_TLS_CERT = env.str("MAILHUB_SMTPD_TLS_CERT", default="")
MAILHUB_SMTPD_TLS_KEY = env.str("MAILHUB_SMTPD_TLS_KEY", default="")
# Loop protection: a sender creating this many records through aliases within the window is
# refused (Odoo's mail.gateway.loop.threshold / .minutes).
MAILHUB_LOOP_THRESHOLD = env.int("MAILHUB_LOOP_THRESHOLD", default=20)
MAILHUB_LOOP_MINUTES = env.int("MAILHUB_LOOP_MINUTES", default=120)
# The dev relay (manage.py devrelay).
MAILHUB_DEVRELAY_LISTEN = env.str("MAILHUB_DEVRELAY_LISTEN", default="127.0.0.1:1025")
MAILHUB_DEVRELAY_REJECT = env.str("MAILHUB_DEVRELAY_REJECT", default="@reject.test")
MAILHUB_DEVRELAY_DEFER = env.str("MAILHUB_DEVRELAY_DEFER", default="@defer.test")

# --- Outbox -------------------------------------------------------------------------------------
MAILHUB_DAILY_QUOTA = env.int("MAILHUB_DAILY_QUOTA", default=200)
# When the quota is reached: "fail" (exception, "Daily limit reached") or "defer" (next day).
MAILHUB_QUOTA_POLICY = env.str("MAILHUB_QUOTA_POLICY", default="fail")
MAILHUB_QUEUE_INTERVAL_MINUTES = env.int("MAILHUB_QUEUE_INTERVAL_MINUTES", default=60)
MAILHUB_QUEUE_BATCH_SIZE = env.int("MAILHUB_QUEUE_BATCH_SIZE", default=500)
# Workers one queue-manager run may use on a big backlog (itself + helpers; 1 = alone).
MAILHUB_QUEUE_PARALLEL = env.int("MAILHUB_QUEUE_PARALLEL", default=1)
MAILHUB_QUEUE_TIME_BUDGET = env.float("MAILHUB_QUEUE_TIME_BUDGET", default=240.0)
MAILHUB_CLAIM_LEASE_SECONDS = env.int("MAILHUB_CLAIM_LEASE_SECONDS", default=300)
# RFC 5321 §4.5.4.1: retry at least 30 minutes apart (after quick early tries), give up after
# 4-5 days. Delays in seconds, the last one repeats until the give-up age.
MAILHUB_RETRY_DELAYS = env.list(
    "MAILHUB_RETRY_DELAYS", cast=int, default=[60, 300, 900, 1800, 3600, 7200, 14400]
)
MAILHUB_RETRY_MAX_AGE_HOURS = env.int("MAILHUB_RETRY_MAX_AGE_HOURS", default=96)
MAILHUB_RETRY_MAX_ATTEMPTS = env.int("MAILHUB_RETRY_MAX_ATTEMPTS", default=30)
MAILHUB_VACUUM_DAYS = env.int("MAILHUB_VACUUM_DAYS", default=30)

# --- Campaigns (email marketing) ----------------------------------------------------------------
# List members turned into queued mail per transaction, and the seconds one run of "Mail
# Marketing: Process queue" may work before it hands over to its own continuation.
MAILHUB_CAMPAIGN_BATCH_SIZE = env.int("MAILHUB_CAMPAIGN_BATCH_SIZE", default=500)
MAILHUB_CAMPAIGN_TIME_BUDGET = env.float("MAILHUB_CAMPAIGN_TIME_BUDGET", default=120.0)

# --- Bounces ------------------------------------------------------------------------------------
MAILHUB_BLACKLIST_BOUNCES = env.int("MAILHUB_BLACKLIST_BOUNCES", default=5)
MAILHUB_BLACKLIST_WINDOW_WEEKS = env.int("MAILHUB_BLACKLIST_WINDOW_WEEKS", default=13)
MAILHUB_BLACKLIST_MIN_SPREAD_DAYS = env.int("MAILHUB_BLACKLIST_MIN_SPREAD_DAYS", default=7)

# --- DNS diagnostics ----------------------------------------------------------------------------
MAILHUB_DNS_NAMESERVERS = env.list("MAILHUB_DNS_NAMESERVERS", default=[])
MAILHUB_DNS_TIMEOUT = env.float("MAILHUB_DNS_TIMEOUT", default=3.0)
# The DKIM selector checked by default (``<selector>._domainkey.<domain>``), and the public host
# name the MX records must point to (the listener's bind address is often 0.0.0.0).
MAILHUB_DKIM_SELECTOR = env.str("MAILHUB_DKIM_SELECTOR", default="mailhub")
MAILHUB_INBOUND_HOSTNAME = env.str("MAILHUB_INBOUND_HOSTNAME", default="")

# --- Logging ------------------------------------------------------------------------------------
LOG_DIR = Path(env.str("MAILHUB_LOG_DIR", default=str(VAR_DIR / "log")))
LOG_DIR.mkdir(parents=True, exist_ok=True)
LOG_LEVEL = env.str("MAILHUB_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "line"},
        "file": {
            "class": "mailhub.logfiles.DailyRotatingFileHandler",
            "filename": str(LOG_DIR / "mailhub.log"),
            "formatter": "line",
        },
    },
    "loggers": {
        "mailhub": {"handlers": ["console", "file"], "level": LOG_LEVEL, "propagate": False},
    },
}
