"""Email templates: compiled and CSS-inlined once per version, rendered once per recipient.

A template is HTML that extends a layout and fills three blocks: ``subject``, ``preheader`` and
``content``. Compiling resolves the layout by pasting blocks into it, runs premailer over the
result once, and compiles the inlined markup, the subject and the text part with Jinja's sandbox.
The compiled form is cached by a hash of everything it was made from, so a new version of a
template is a new cache entry and a recipient never pays for premailer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import html2text
import jinja2
from jinja2 import meta, nodes
from markupsafe import escape

from nurture.core import languages
from nurture.core.content.sandbox import BoundedEnvironment, TemplateLimitError, budget, finalize
from nurture.core.errors import ValidationError

_EXTENDS = re.compile(r"""\A\s*{%-?\s*extends\s+["']([\w./-]+)["']\s*-?%}""")
_BLOCK = re.compile(r"{%-?\s*block\s+(\w+)\s*-?%}(.*?){%-?\s*endblock(?:\s+\w+)?\s*-?%}", re.DOTALL)
_NESTED_BLOCK = re.compile(r"{%-?\s*block\s")

# premailer logs every CSS property it cannot inline into a style attribute; that's expected.
logging.getLogger("premailer").setLevel(logging.ERROR)
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)

# An admin-edited template by name: (html, text or None, subject), or None when there is none.
Sources = Callable[[str], tuple[str, str | None, str] | None]
# An admin-edited template's translations by name: {language: (html, text or None, subject)}.
Translations = Callable[[str], dict[str, tuple[str, str | None, str]]]
# The language the starter files are written in; their translations are in subfolders (de/, fr/).
STARTER_LANGUAGE = "en"

# Every edit and every preview is a new version; keep the recent ones, not all since start-up.
CACHE_SIZE = 256
# Characters of template source per part: premailer and Jinja's compiler take time and memory
# in proportion, and no mail needs more (Gmail clips a mail after about 102 KB).
MAX_SOURCE = 500_000


class RenderError(ValidationError):
    """A template could not be rendered for a recipient; ``fields`` names the part and why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"the {field} cannot be rendered: {problem}", {field: problem})
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class RenderedMail:
    """What one recipient gets: the subject line and both parts."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    """A template version ready for per-recipient rendering."""

    key: str
    subject: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template | None
    # Top-level names the template reads, so senders build costly values (signed URLs) only
    # for templates that use them.
    variables: frozenset[str] = frozenset()
    # The language it is written in (the footer and the pages it links to follow it).
    language: str = ""

    def render(self, context: Mapping[str, Any]) -> RenderedMail:
        """Render for one recipient within the sandbox's limits; only Jinja runs, never premailer.

        RenderError names the part (subject, html, text) and what went wrong, a limit included.
        """
        with budget():
            html = _render_part(self.html, context, "html")
            if self.text is not None:
                text = _render_part(self.text, context, "text")
            else:
                text = html_to_text(html)
            subject = " ".join(_render_part(self.subject, context, "subject").split())
        return RenderedMail(subject=subject, html=html, text=_tidy_text(text))


def _render_part(template: jinja2.Template, context: Mapping[str, Any], field: str) -> str:
    try:
        return template.render(context)
    except TemplateLimitError as exc:
        raise RenderError(field, str(exc)) from None
    except RecursionError:
        raise RenderError(field, "it calls itself without end (a macro or a loop)") from None
    except Exception as exc:  # noqa: BLE001 - an author's template can raise anything
        raise RenderError(field, f"cannot be rendered: {exc}") from None


def readable_list(items: Any) -> str:
    """A list as a sentence says it: ``python, aws and django`` (empty items left out)."""
    words = [str(item) for item in items if item not in (None, "")]
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: the sandbox's bounded value, never a Python repr of a list
    (``{{ candidate.skills }}`` reads "python, aws and django", not "['python', 'aws']")."""
    value = finalize(value)  # the sandbox's size check first: a huge list is never joined
    return readable_list(value) if isinstance(value, list | tuple) else value


def _environment(autoescape: bool) -> BoundedEnvironment:
    return BoundedEnvironment(
        autoescape=autoescape,
        undefined=jinja2.ChainableUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


class TemplateLibrary:
    """Starter files, admin-edited templates (via ``sources``) and inline HTML, compiled on demand.

    ``sources`` looks an admin-edited template up by name; it is consulted before the files,
    so a template a campaign already uses keeps its content if a starter of that name appears.
    """

    def __init__(
        self,
        directory: str | Path,
        sources: Sources | None = None,
        translations: Translations | None = None,
        default_language: str = STARTER_LANGUAGE,
        inline: Callable[[str], str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.sources = sources
        self.translations = translations
        # The team's language: what its own templates are written in, and the fallback for
        # candidates whose language nobody translated into.
        self.default_language = languages.normalise(default_language) or STARTER_LANGUAGE
        # How CSS is inlined at compile time: in this process, or (a worker) in a child.
        self.inline = inline or inline_css
        self._html_env = _environment(autoescape=True)
        self._text_env = _environment(autoescape=False)
        self._text_env.loader = jinja2.FileSystemLoader(str(self.directory))
        self._cache: OrderedDict[str, CompiledTemplate] = OrderedDict()
        self._by_source: OrderedDict[tuple[Any, ...], CompiledTemplate] = OrderedDict()
        self._layout_paths = sorted(self.directory.glob("layout*"))
        self._lock = threading.Lock()
        self.compilations = 0  # how often premailer ran; the benchmark and tests read it

    def names(self) -> list[str]:
        """Names of the starter templates (files that extend a layout)."""
        return sorted(
            path.stem
            for path in self.directory.glob("*.html")
            if not path.stem.startswith(("layout", "_"))
        )

    def file_sources(self, name: str) -> tuple[str, str | None]:
        """The HTML source of a starter template and its ``.txt`` twin, if it has one."""
        if not re.fullmatch(r"[\w-]+", name or ""):
            raise ValidationError("unknown template", {"template": f"no template named {name!r}"})
        html_path = self.directory / f"{name}.html"
        if not html_path.is_file():
            known = ", ".join(self.names())
            raise ValidationError(
                "unknown template", {"template": f"no template named {name!r}; known: {known}"}
            )
        text_path = self.directory / f"{name}.txt"
        text = text_path.read_text("utf-8") if text_path.is_file() else None
        return html_path.read_text("utf-8"), text

    def file_languages(self, name: str) -> list[str]:
        """The languages a starter file is translated into (``de/<name>.html`` and so on)."""
        found = []
        for path in sorted(self.directory.glob(f"*/{name}.html")):
            try:
                code = languages.normalise(path.parent.name)
            except languages.BadLanguage:
                continue  # a folder that is no language (partials, images)
            if code == path.parent.name:
                found.append(code)
        return found

    def translated_file(self, name: str, language: str) -> tuple[str, str | None]:
        """A starter's translation into ``language`` (one of ``file_languages``)."""
        if language not in self.file_languages(name):
            raise ValidationError(
                "unknown translation", {"language": f"{name} has no translation into {language}"}
            )
        folder = self.directory / language
        text_path = folder / f"{name}.txt"
        text = text_path.read_text("utf-8") if text_path.is_file() else None
        return (folder / f"{name}.html").read_text("utf-8"), text

    def source(self, name: str) -> tuple[str, str | None, str]:
        """The (html, text or None, own subject) of template ``name`` in its own language."""
        if self.sources is not None and re.fullmatch(r"[\w-]+", name or ""):
            found = self.sources(name)
            if found is not None:
                html, text, own_subject = found
                return html, text or None, own_subject
        html, text = self.file_sources(name)
        return html, text, ""

    def versions(self, name: str) -> tuple[str, dict[str, tuple[str, str | None, str]]]:
        """``name`` in every language it is written in: (its own language, {language: parts}).

        The team's templates are written in the team's language, the starter files in English.
        """
        if self.sources is not None and re.fullmatch(r"[\w-]+", name or ""):
            found = self.sources(name)
            if found is not None:
                own = self.default_language
                written = dict(self.translations(name)) if self.translations else {}
                written[own] = found
                return own, written
        html, text = self.file_sources(name)
        written = {STARTER_LANGUAGE: (html, text, "")}
        for code in self.file_languages(name):
            translated_html, translated_text = self.translated_file(name, code)
            written[code] = (translated_html, translated_text, "")
        return STARTER_LANGUAGE, written

    def get(
        self,
        name: str,
        subject: str = "",
        *,
        language: str = "",
        subjects: Mapping[str, str] | None = None,
    ) -> CompiledTemplate:
        """The compiled template ``name`` (admin-edited, else a starter file) for a reader of
        ``language``, optionally with another subject line.

        The translation is chosen by ``languages.choose`` (their language, else the team's
        default, else the template's own). ``subject`` replaces the subject of the template's
        own language; ``subjects`` (by language) those of its translations, whose own subject
        stands where none is given: a German reader never gets an English subject line over a
        German mail.
        """
        own, written = self.versions(name)
        chosen = languages.choose(language, written, self.default_language) or own
        html, text, own_subject = written[chosen]
        if chosen == own:
            wanted = subject
        else:
            wanted = (subjects or {}).get(chosen, "")
        return self.compile(html, text or None, subject=wanted or own_subject, language=chosen)

    def check(self, source: str, field: str, *, text: bool = False) -> nodes.Template:
        """Parse and compile ``source`` as its author wrote it; errors name the author's line.

        Compiling (not only parsing) also finds unknown filters and tests. Returns the syntax
        tree, for callers that look at which variables a template uses.
        """
        env = self._text_env if text else self._html_env
        with template_errors(field):
            _check_size(source, field)
            tree = env.parse(source)
            env.compile(tree)
        return tree

    def compile(
        self, html: str, text: str | None = None, subject: str = "", language: str = ""
    ) -> CompiledTemplate:
        """Compile an HTML template (and optional text twin) written in ``language`` ("" for
        the team's); cached by content hash and language."""
        language = language or self.default_language
        # The same source seen again (every recipient of a step) costs one dict lookup; the
        # layouts' modification times are part of the key so an edited layout is seen at once.
        source_key = (html, text, subject, language, self._layouts_version())
        known = self._by_source.get(source_key)
        if known is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
                self._by_source.move_to_end(source_key)
                self._cache.move_to_end(known.key)
            return known
        compiled = self._compile_source(html, text, subject, language)
        with self._lock:
            self._by_source[source_key] = compiled
            if len(self._by_source) > CACHE_SIZE:
                self._by_source.popitem(last=False)
        return compiled

    def _layouts_version(self) -> tuple[int, ...]:
        return tuple(path.stat().st_mtime_ns for path in self._layout_paths)

    def _compile_source(
        self, html: str, text: str | None, subject: str, language: str
    ) -> CompiledTemplate:
        # Syntax errors are reported on the lines the author wrote, before the layout is pasted in.
        self._check_syntax(self._html_env, html, "html")
        flat_html, blocks = self._flatten(html)
        subject_source = subject.strip() or blocks.get("subject", "").strip()
        key = hashlib.sha256(
            "\x00".join([flat_html, text or "", subject_source, language]).encode()
        ).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
                self._cache.move_to_end(key)
            return cached
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            compiled = self._compile(key, flat_html, text, subject_source, language)
            self._cache[key] = compiled
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)  # the least recently used
            return compiled

    def _compile(
        self, key: str, flat_html: str, text: str | None, subject_source: str, language: str
    ) -> CompiledTemplate:
        if not subject_source:
            raise ValidationError(
                "subject is missing",
                {"subject": "give a subject line, or a {% block subject %} in the template"},
            )
        subject = self._parse(self._text_env, subject_source, "subject")
        if text:
            self._check_syntax(self._text_env, text, "text")
        self._parse(self._html_env, flat_html, "html")  # report syntax errors on the source lines
        inlined = self.inline(flat_html)
        self.compilations += 1
        html_template = self._parse(self._html_env, inlined, "html")
        text_template = self._parse(self._text_env, text, "text") if text else None
        variables = frozenset().union(
            *(
                meta.find_undeclared_variables(env.parse(source))
                for env, source in (
                    (self._text_env, subject_source),
                    (self._html_env, inlined),
                    (self._text_env, text or ""),
                )
            )
        )
        return CompiledTemplate(
            key=key,
            subject=subject,
            html=html_template,
            text=text_template,
            variables=variables,
            language=language,
        )

    @staticmethod
    def _check_syntax(env: BoundedEnvironment, source: str, field: str) -> None:
        with template_errors(field):
            _check_size(source, field)
            env.parse(source)

    @staticmethod
    def _parse(env: BoundedEnvironment, source: str, field: str) -> jinja2.Template:
        with template_errors(field):
            return env.from_string(source)

    def _flatten(self, source: str) -> tuple[str, dict[str, str]]:
        """Resolve ``{% extends %}`` by pasting the child's blocks into the layout's."""
        match = _EXTENDS.match(source)
        blocks = _blocks(source)
        if match is None:
            return _strip_blocks(source), blocks
        layout_name = match.group(1)
        layout_path = self.directory / layout_name
        if "/" in layout_name or ".." in layout_name or not layout_path.is_file():
            raise ValidationError(
                "unknown layout", {"html": f"line 1: no layout named {layout_name!r}"}
            )
        layout = layout_path.read_text("utf-8")

        def fill(found: re.Match[str]) -> str:
            return blocks.get(found.group(1), found.group(2))

        return _BLOCK.sub(fill, layout), blocks


@contextlib.contextmanager
def template_errors(field: str) -> Iterator[None]:
    """Turn what parsing or compiling an author's template can raise into a ValidationError."""
    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationError(
            f"{field} has a template error on line {exc.lineno}",
            {field: f"line {exc.lineno}: {exc.message}"},
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise ValidationError(
            f"{field} names a missing template", {field: f"no template named {exc.name!r}"}
        ) from None
    except RecursionError:
        raise ValidationError(
            f"{field} is nested too deeply", {field: "is nested too deeply to compile"}
        ) from None
    except (ValueError, OverflowError, TemplateLimitError) as exc:
        # A number literal of thousands of digits, for one.
        raise ValidationError(f"{field} cannot be compiled", {field: str(exc)}) from None


def _check_size(source: str, field: str) -> None:
    if len(source) > MAX_SOURCE:
        raise ValidationError(
            f"{field} is too long",
            {field: f"is {len(source):,} characters; a template part may have {MAX_SOURCE:,}"},
        )


def _blocks(source: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    for found in _BLOCK.finditer(source):
        if _NESTED_BLOCK.search(found.group(2)):
            line = source.count("\n", 0, found.start()) + 1
            raise ValidationError(
                "nested blocks", {"html": f"line {line}: blocks cannot be nested"}
            )
        blocks[found.group(1)] = found.group(2)
    return blocks


def _strip_blocks(source: str) -> str:
    return _BLOCK.sub(lambda found: found.group(2), source)


_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def inline_css(html: str) -> str:
    """Move the ``<style>`` rules onto the elements, keeping media queries and Jinja intact.

    lxml would URL-encode Jinja expressions inside ``href`` (and mangle their quotes), so every
    Jinja tag is swapped for an inert placeholder while premailer runs, then put back.
    """
    saved: list[str] = []

    def park(found: re.Match[str]) -> str:
        saved.append(found.group(0))
        return f"NURTUREJINJA{len(saved) - 1}X"

    parked = _JINJA.sub(park, html)
    # Imported here: premailer (with cssutils and requests, ~27 MB) only runs when a template
    # is compiled, never per mail.
    from premailer import Premailer

    inlined = Premailer(
        parked,
        keep_style_tags=True,
        strip_important=False,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        allow_network=False,
    ).transform()
    return re.sub(r"NURTUREJINJA(\d+)X", lambda found: saved[int(found.group(1))], inlined)


_CHILD = (
    "import sys\n"
    "from nurture.core.content.rendering import inline_css\n"
    "sys.stdout.buffer.write(inline_css(sys.stdin.buffer.read().decode()).encode())\n"
)


def inline_css_in_child(html: str) -> str:
    """:func:`inline_css` in a short-lived Python process of its own.

    premailer, cssutils and requests take some 27 MB that a long-running worker would keep for
    good after its first compilation; a child returns them to the system. It costs about a
    second per template version and worker, once: the compiled form is cached.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=html.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"inlining CSS failed: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout.decode()


def html_to_text(html: str) -> str:
    """A readable plain-text part from HTML, for templates without a ``.txt`` twin."""
    # Hidden preheader text belongs to inbox previews, not to the text part.
    html = re.sub(r"<(span|div)[^>]*display:\s*none[^>]*>.*?</\1>", "", html, flags=re.S | re.I)
    converter = html2text.HTML2Text()  # holds parse state: one per call
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.inline_links = False
    converter.wrap_links = False
    return converter.handle(html)


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line == "" and tidy and tidy[-1] == "":
            continue
        tidy.append(line)
    return "\n".join(tidy) + "\n"


_PREHEADER = re.compile(
    r"\{%-?\s*block\s+preheader\s*-?%\}.*?\{%-?\s*endblock(?:\s+preheader)?\s*-?%\}", re.DOTALL
)
_EXTENDS_TAG = re.compile(r"\{%-?\s*extends\s[^%]*%\}")


def with_preheader(html: str, preheader: str) -> str:
    """``html`` with its preview text replaced by ``preheader`` (plain text, escaped as HTML):
    an A/B variant's own preview line. Added after the ``extends`` line when there is none."""
    block = "{% block preheader %}" + str(escape(preheader)) + "{% endblock %}"
    if _PREHEADER.search(html):
        return _PREHEADER.sub(lambda _m: block, html, count=1)
    found = _EXTENDS_TAG.search(html)
    if found is None:
        return html
    return html[: found.end()] + block + html[found.end() :]
