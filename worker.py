"""Start a nurture worker on the configured Redis: ``python worker.py [--burst]``."""

import sys

from nurture import create_app
from nurture.tasks.worker import run_worker

if __name__ == "__main__":
    run_worker(create_app(), burst="--burst" in sys.argv[1:])
