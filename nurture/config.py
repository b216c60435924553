"""Configuration: defaults here, overridden by ``NURTURE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

INSTANCE_DIR = Path(os.environ.get("NURTURE_INSTANCE_PATH", Path.cwd() / "instance")).resolve()


class Config:
    """Defaults for a local, single-machine install; every key can be set as ``NURTURE_<KEY>``."""

    SECRET_KEY: str | None = None
    DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'nurture.db'}"
    REDIS_URL = "redis://127.0.0.1:6379/0"
    SMTP_URL = "smtp://127.0.0.1:2525"
    SMTP_TIMEOUT = 30
    BASE_URL = "http://127.0.0.1:5000"
    # Anything a reader sees in the footer and the From line.
    COMPANY_NAME = "Acme Talent"
    POSTAL_ADDRESS = "Acme Inc., 1 Example Street, Springfield"
    CAREERS_URL = "https://careers.example.com"
    TALENT_NETWORK_URL = "https://careers.example.com/talent-network"
    SENDER_NAME = "Acme Talent Team"
    SENDER_EMAIL = "talent@example.com"
    LIST_ID_DOMAIN = "nurture.example.com"
    # DKIM selector: the key is published at <selector>._domainkey.<domain> (`nurture dkim`).
    DKIM_SELECTOR: str | None = None
    # DKIM signing domain (d=); align it with the From domain for DMARC.
    DKIM_DOMAIN: str | None = None
    # The DKIM private key as PEM text (an env var holding the key itself).
    DKIM_PRIVATE_KEY: str | None = None
    # Or the path of a file holding that PEM; with neither, mail goes out unsigned.
    DKIM_PRIVATE_KEY_FILE: str | None = None
    # Shared secret of the ATS webhook (HMAC-SHA256 over the raw body).
    ATS_SECRET: str | None = None
    # "system", or a path to a file holding an ISO-8601 instant (tests and demos).
    CLOCK = "system"
    QUEUE_NAME = "nurture"
    SEND_BATCH_SIZE = 50
    SCHEDULER_INTERVAL = 5.0
    SCHEDULER_BATCH_SIZE = 1000
    # Rows an import writes per transaction (and per progress update).
    IMPORT_BATCH_SIZE = 500
    # A message claimed this long ago and still "sending" is presumed lost with its worker.
    STUCK_AFTER_SECONDS = 600
    # A queued message whose job has not run for this long is enqueued again.
    REQUEUE_AFTER_SECONDS = 120
    # Where the local SMTP capture keeps mail (a maildir), shown in the admin's mailbox.
    MAILBOX_DIR: str | None = None
    TEMPLATES_DIR = str(Path(__file__).resolve().parent.parent / "templates" / "emails")
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}


class TestConfig(Config):
    """Settings the test suite starts from; fixtures fill in the real services."""

    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    ATS_SECRET = "test-ats-secret"
    BASE_URL = "https://nurture.test"
    DATABASE_URL = "sqlite://"
