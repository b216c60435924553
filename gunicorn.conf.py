"""gunicorn's settings for nurture's web tier, read by ``gunicorn wsgi:app`` started here.

gunicorn reads ./gunicorn.conf.py from its working directory: start it from the repository root
(or pass ``-c /path/to/gunicorn.conf.py``). Flags on the command line and ``GUNICORN_CMD_ARGS``
override what is set here; bind with ``--bind`` (default 127.0.0.1:8000) behind your TLS proxy.

Why these (``bench/tracking.py`` measures them, see the README's "Scaling out"):

- ``gthread``: threads let the opens and clicks arriving together in one process share one
  transaction (group commit, ``nurture/web/public/committer.py``), and keep-alive connections
  from the proxy stay open; a sync worker answers one request at a time and closes each
  connection, so every hit pays its own COMMIT and its own TCP handshake.
- one worker per core (``WEB_CONCURRENCY``, gunicorn's own variable, sets it): a worker runs
  Python on one core at a time.
- 8 threads per worker: a thread waits on its hit's commit (a few ms) while the others take the
  next requests; more only make bigger batches the database does not need.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 8
# Seconds an idle keep-alive connection stays open (the proxy in front reuses it).
keepalive = 5
