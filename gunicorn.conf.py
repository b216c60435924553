"""gunicorn's settings for nurture's web tier, read by ``gunicorn wsgi:app`` started here.

gunicorn reads ./gunicorn.conf.py from its working directory: start it from the repository root
(or pass ``-c /path/to/gunicorn.conf.py``). Flags on the command line and ``GUNICORN_CMD_ARGS``
override what is set here; bind with ``--bind`` (default 127.0.0.1:8000) behind your TLS proxy.

Why these (``bench/tracking.py`` measures them, see the README's "Scaling out"):

- ``gthread``: threads let the opens and clicks arriving together in one process share one
  transaction (group commit, ``nurture/web/public/committer.py``), and keep-alive connections
  from the proxy stay open; a sync worker answers one request at a time and closes each
  connection, so every hit pays its own COMMIT and its own TCP handshake.
- one worker (``WEB_CONCURRENCY``, gunicorn's own variable, sets more): on 2 cores shared with
  PostgreSQL, one process of 16 threads gathers about 8 hits per transaction and costs ~0.5 ms
  of server CPU per hit; two processes of 8 split the batches (~2.5 hits per transaction) and
  cost ~0.85 ms, and were slower on the loaded machine. A worker runs Python on one core at a
  time: give it more once the database has cores of its own, about one worker per 2 cores.
- 16 threads per worker: a thread waits on its hit's commit (a few ms) while the others take the
  next requests; a thread also holds each connection busy only while a request is in it
  (gthread keeps idle keep-alive connections aside), so 16 serve many more connections.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = 16
# Seconds an idle keep-alive connection stays open (the proxy in front reuses it).
keepalive = 5
