"""nurture: a self-hosted email campaign engine for talent-network nurturing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from nurture.config import INSTANCE_DIR, Config, ConfigError
from nurture.core import settings as core_settings


def create_app(config_class: type[Config] = Config, *, web: bool = True, **overrides: Any) -> Flask:
    """Build the Flask app: configuration, extensions, blueprints; nothing else.

    ``web=False`` leaves out what only serves HTTP and the CLI (blueprints, login, CSRF,
    migrations): a worker's app, some 40 MB lighter, that runs jobs only.
    """
    instance = overrides.pop("INSTANCE_PATH", None) or os.environ.get("NURTURE_INSTANCE_PATH")
    app = Flask(__name__, instance_path=str(Path(instance or INSTANCE_DIR).resolve()))
    app.config.from_object(config_class)
    app.config.from_prefixed_env("NURTURE")
    app.config.update(overrides)
    _finish_config(app)

    from nurture import tasks
    from nurture.extensions import db

    db.init_app(app)
    tasks.init_app(app)
    core_settings.install(_running_app_config)
    if not web:
        return app

    from flask_migrate import Migrate

    from nurture.extensions import csrf, login_manager
    from nurture.web import security

    security.init_app(app)  # before the blueprints: their <int:…> routes use its converter

    # Alembic only where migrations run (the CLI), not in every worker.
    Migrate(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)

    from nurture.web import public
    from nurture.web.admin import bp as admin_bp
    from nurture.web.api import bp as api_bp
    from nurture.web.ops import bp as ops_bp
    from nurture.web.public import bp as tracking_bp

    app.register_blueprint(ops_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(tracking_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    public.init_app(app)  # the open pixel and click redirect, ahead of Flask

    from nurture import cli

    cli.init_app(app)
    return app


def _running_app_config() -> Mapping[str, Any]:
    """The settings of the app in whose context core code runs (none outside one)."""
    from flask import current_app, has_app_context

    return current_app.config if has_app_context() else {}


def _finish_config(app: Flask) -> None:
    """Derive the settings other settings imply, and refuse to run without a secret."""
    from nurture.core import languages
    from nurture.runtime import clock_from_setting

    if not app.config.get("SECRET_KEY"):
        raise ConfigError(
            "NURTURE_SECRET_KEY is not set: export a long random value "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    app.config["SQLALCHEMY_DATABASE_URI"] = _sqlalchemy_url(app.config["DATABASE_URL"])
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Worker, scheduler and web share the file; wait for a lock instead of failing.
        options["connect_args"] = {"timeout": 30, **options.get("connect_args", {})}
    else:
        options.setdefault("pool_pre_ping", True)
    # A database error's message must not carry candidates' addresses and names into logs.
    options.setdefault("hide_parameters", True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    app.config.setdefault("ATS_SECRET", None)
    try:
        app.config["DEFAULT_LANGUAGE"] = languages.normalise(
            str(app.config.get("DEFAULT_LANGUAGE") or "en")
        )
    except languages.BadLanguage as exc:
        raise ConfigError(f"NURTURE_DEFAULT_LANGUAGE: {exc}") from None
    app.extensions["nurture.clock"] = clock_from_setting(str(app.config["CLOCK"]))


def _sqlalchemy_url(url: str) -> str:
    """Accept the URLs operators write (``postgres://``) and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _migrations_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "migrations"
