"""The worker's app: jobs only, without what serves HTTP or compiles templates in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from nurture import create_app
from nurture.core.content.rendering import TemplateLibrary, inline_css, inline_css_in_child

HEAVY = ("alembic", "flask_migrate", "premailer", "cssutils", "dkim", "dns", "nurture.web.admin")


def test_a_worker_app_leaves_out_the_web_migrations_premailer_and_dkimpy() -> None:
    probe = (
        "import json, sys\n"
        "from nurture import create_app\n"
        "from nurture.tasks.sending import sender_for\n"
        "from nurture.tasks.worker import run_worker\n"
        "app = create_app(web=False, DATABASE_URL='sqlite://')\n"
        f"print(json.dumps([sorted(app.blueprints), [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    env = dict(os.environ, NURTURE_SECRET_KEY="k" * 32)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    blueprints, loaded = json.loads(done.stdout.splitlines()[-1])
    assert blueprints == [] and loaded == []


def test_css_inlined_in_a_child_process_is_what_inlining_here_gives(tmp_path) -> None:
    html = (
        "<html><head><style>p { color: #123456 }</style></head>"
        '<body><p>Hi {{ first_name }}, <a href="{{ url }}">here</a></p></body></html>'
    )
    assert inline_css_in_child(html) == inline_css(html)
    library = TemplateLibrary(tmp_path, inline=inline_css_in_child)
    compiled = library.compile(html, "Hi {{ first_name }}", subject="Hello")
    assert 'style="color:#123456"' in compiled.render({"first_name": "Ada", "url": "x"}).html


def test_the_web_app_keeps_its_blueprints() -> None:
    app = create_app(DATABASE_URL="sqlite://", SECRET_KEY="k" * 32)
    assert {"admin", "api"} <= set(app.blueprints)
