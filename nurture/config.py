"""Configuration: defaults here, overridden by ``NURTURE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class ConfigError(RuntimeError):
    """A setting is missing or wrong: the message names the variable and how to fix it."""


INSTANCE_DIR = Path(os.environ.get("NURTURE_INSTANCE_PATH", Path.cwd() / "instance")).resolve()


class Config:
    """Defaults for a local, single-machine install; every key can be set as ``NURTURE_<KEY>``."""

    SECRET_KEY: str | None = None
    DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'nurture.db'}"
    REDIS_URL = "redis://127.0.0.1:6379/0"
    SMTP_URL = "smtp://127.0.0.1:2525"
    SMTP_TIMEOUT = 30
    # Tries per message before a temporary SMTP failure (4xx, timeout, lost connection) is final.
    SMTP_MAX_ATTEMPTS = 5
    # First retry after this many seconds, doubling each time (±20 % jitter, at most 4 hours).
    SMTP_RETRY_BASE_SECONDS = 60
    # Mails per second the relay takes from all workers together; 0 = no limit.
    SMTP_RATE_PER_SECOND = 0
    # Mails per second per recipient domain, e.g. {"gmail.com": 20}; "*" covers the others.
    SMTP_DOMAIN_RATES: dict[str, Any] = {}
    # Relay failures in a row (no connection, 4xx, no reply) that pause all sending.
    SMTP_BREAKER_THRESHOLD = 5
    # How long sending pauses then; one trial send afterwards resumes it or pauses again.
    SMTP_BREAKER_COOLDOWN_SECONDS = 300
    BASE_URL = "http://127.0.0.1:5000"
    # Anything a reader sees in the footer and the From line.
    COMPANY_NAME = "Acme Talent"
    # The company's colour on the pages candidates reach from their mail (#rrggbb).
    BRAND_COLOR = "#1a5fb4"
    # The team's language (a BCP 47 code): its own templates are written in it, and candidates
    # whose language has no translation get it (mails, footer, their preference pages).
    DEFAULT_LANGUAGE = "en"
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
    # Outbound webhooks to the ATS (candidate.referred, .replied, .unsubscribed, .erased, .rated):
    # a URL that receives signed POSTs, and its secret (else ATS_SECRET signs them). More
    # endpoints can be added in the admin (Webhooks).
    ATS_WEBHOOK_URL: str | None = None
    ATS_WEBHOOK_SECRET: str | None = None
    # Tries per delivery, the first retry after this many seconds (doubling, at most 6 hours),
    # and how long one POST may take.
    WEBHOOK_MAX_ATTEMPTS = 12
    WEBHOOK_RETRY_BASE_SECONDS = 30
    WEBHOOK_TIMEOUT_SECONDS = 10
    # Replies go to the candidate's recruiter; without one, to this team address (else nobody:
    # they wait in the admin's Replies inbox).
    REPLY_TEAM_ADDRESS: str | None = None
    # Tries to forward a reply before giving up (the reply stays in the inbox either way).
    REPLY_FORWARD_MAX_ATTEMPTS = 8
    # Rejection promptness: hours within which a rejected candidate should have our first mail
    # (the admin can change it on the Promptness page).
    REJECTION_TARGET_HOURS = 48
    # Days a referred person has to confirm they want to hear from us before their details go.
    REFERRAL_CONSENT_DAYS = 30
    # Where candidates' replies arrive: imaps://user:pass@host:993/INBOX, imap://…, or maildir:///path.
    INBOUND_IMAP_URL: str | None = None
    # Where bounces and complaints arrive (the Return-Path mailbox); same forms as above.
    BOUNCE_IMAP_URL: str | None = None
    # Shared secret of the bounce webhook (HMAC-SHA256 over the raw body, like the ATS's).
    BOUNCE_WEBHOOK_SECRET: str | None = None
    # Soft bounces (full mailbox, deferrals) after which an address is treated as hard-bounced.
    SOFT_BOUNCE_LIMIT = 3
    # Domains whose provider delivers "name+tag@" to "name@" (Gmail also ignores dots): there a
    # suppressed address stops its variations too. E.g. ["gmail.com", "googlemail.com"].
    SUPPRESSION_FOLD_DOMAINS: list[str] = []
    # "system", or a path to a file holding an ISO-8601 instant (tests and demos).
    CLOCK = "system"
    QUEUE_NAME = "nurture"
    SEND_BATCH_SIZE = 50
    SCHEDULER_INTERVAL = 5.0
    SCHEDULER_BATCH_SIZE = 5000
    # Rows an import writes per transaction (and per progress update).
    IMPORT_BATCH_SIZE = 500
    # A running import whose worker has not reported for this long is handed to a worker again
    # (it resumes after its last committed batch).
    IMPORT_STALLED_AFTER_SECONDS = 600
    # A message claimed this long ago and still "sending" is presumed lost with its sender, when
    # that sender kept no heartbeat (workers do: see WORKER_LEASE_SECONDS).
    STUCK_AFTER_SECONDS = 600
    # A worker's claimed mail goes back to the queue once its heartbeat (every quarter of this)
    # is this many seconds old: a killed worker's mail is sent again within half a minute.
    WORKER_LEASE_SECONDS = 20
    # Open-tracking pixel in every mail; false = no pixel for anyone (clicks are still tracked).
    OPEN_TRACKING = True
    # Opens and clicks arriving together in one web process share one transaction (group
    # commit); each answer still waits for its hit's COMMIT. false = a transaction per hit.
    TRACKING_GROUP_COMMIT = True
    # Seconds a hit waits for its commit (retried meanwhile if the database is away) before the
    # pixel or redirect is served anyway, unrecorded (marked "X-Nurture-Recorded: no").
    TRACKING_COMMIT_TIMEOUT = 2.0
    # Months without human engagement or update before a candidate is asked to re-consent.
    RETENTION_MONTHS = 24
    # Days after the re-consent mail before a candidate who did not confirm is anonymised.
    RECONSENT_GRACE_DAYS = 30
    # Talent-pool health: days without a human open before a candidate is cold (and gets the
    # re-engagement drip), months without engagement before they are sunset (no longer mailed).
    # Admins can change both on the Pool health page.
    COLD_AFTER_DAYS = 60
    SUNSET_AFTER_MONTHS = 6
    # A queued message whose job has not run for this long is enqueued again.
    REQUEUE_AFTER_SECONDS = 120
    # The zone send windows use for candidates without one (an IANA name such as Europe/London).
    TEAM_TIMEZONE = "UTC"
    # At most this many sent mails per candidate per this many days, across campaigns; {} = none.
    FREQUENCY_CAP: dict[str, int] = {"mails": 2, "days": 7}
    # Kinds of mail the cap never holds (a step is "personal" or "regular"); [] = it holds all.
    FREQUENCY_CAP_EXEMPT: list[str] = ["personal"]
    # Where the local SMTP capture keeps mail (a maildir), shown in the admin's mailbox.
    MAILBOX_DIR: str | None = None
    TEMPLATES_DIR = str(Path(__file__).resolve().parent.parent / "templates" / "emails")
    # Largest request body accepted, in bytes (413 beyond): room for a 20 MB CSV import.
    MAX_CONTENT_LENGTH = 25 * 1024 * 1024
    # Largest form field other than a file (a template's HTML is at most 500,000 characters).
    MAX_FORM_MEMORY_SIZE = 4 * 1024 * 1024
    # Largest body the unauthenticated webhooks (ATS, bounces) read and check the signature of.
    WEBHOOK_MAX_CONTENT_LENGTH = 1024 * 1024
    # Reverse proxies in front that set X-Forwarded-For/-Proto/-Host (0: trust none of them);
    # sign-in throttling counts per client address, so behind a proxy this must be set.
    PROXY_HOPS = 0
    # Strict-Transport-Security max-age, sent when BASE_URL is https.
    HSTS_MAX_AGE = 31536000
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {}
    # GET /metrics: the bearer token Prometheus must send. Unset: no token, but only clients
    # from METRICS_ALLOW are answered.
    METRICS_TOKEN: str | None = None
    # Client networks /metrics answers without a token: CIDRs, or "private" (loopback and the
    # private ranges). Requests that came through a proxy (X-Forwarded-For) never count as such.
    METRICS_ALLOW: list[str] | str = ["private"]
    # Where a scrape reads every process's counters; unset: $PROMETHEUS_MULTIPROC_DIR, which
    # web, workers and scheduler on this machine must share (see deploy/).
    METRICS_DIR: str | None = None
    # GET /readyz: seconds each check (database, Redis, SMTP) may take, and how long an answer
    # is reused so a storm of probes cannot hammer the relay.
    READY_TIMEOUT = 2.0
    READY_CACHE_SECONDS = 5.0


class TestConfig(Config):
    """Settings the test suite starts from; fixtures fill in the real services."""

    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    ATS_SECRET = "test-ats-secret"
    BASE_URL = "https://nurture.test"
    DATABASE_URL = "sqlite://"
