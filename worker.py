"""Start a nurture worker on the configured Redis: ``python worker.py [--burst]``."""

import sys

from nurture import create_app
from nurture.config import ConfigError
from nurture.observability import logs
from nurture.tasks.worker import run_worker

if __name__ == "__main__":
    logs.configure("worker")
    try:
        app = create_app(web=False)  # jobs only: no blueprints, forms or migrations
    except ConfigError as exc:
        sys.exit(f"nurture worker: {exc}")
    run_worker(app, burst="--burst" in sys.argv[1:])
