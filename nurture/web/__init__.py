"""The HTTP surfaces, by audience: ``admin/`` (recruiting ops in a browser), ``api/`` (the ATS and
scripts) and ``public/`` (candidates following links from their mail). Views are thin: parse,
call one service or workflow, answer."""
