"""Short public paths reached from mail; every token is signed, a forged one changes nothing.

The open pixel and the click redirect are served ahead of Flask, by ``hits.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from nurture import runtime
from nurture.core.compliance import preferences as preference_service
from nurture.core.compliance import unsubscribe as unsubscribe_service
from nurture.core.errors import ValidationError
from nurture.core.feedback import answers, ratings
from nurture.core.tokens import BadToken, Tokens
from nurture.extensions import csrf, db
from nurture.models import Candidate, CandidateStatus, Topic
from nurture.web.public import wording
from nurture.web.public.wording import Words, words_for
from nurture.workflows import retention as retention_service

bp = Blueprint(
    "tracking",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
# One-click unsubscribe (RFC 8058) comes from mail providers with no cookie: the signed token
# in the URL is the authority, so there is nothing for a session CSRF token to protect. The
# preference forms carry their own token instead (see _form_guard).
csrf.exempt(bp)

# What the preference page may say after a change (?done=<key>, the words in wording.PAGES
# under done_<key>); nothing else is echoed.
DONE = ("topics", "pause", "unpause", "tracking", "stay", "language")


def _tokens() -> Tokens:
    return Tokens.from_config(current_app.config)


def _user_agent() -> str:
    return request.headers.get("User-Agent", "")


def _company() -> str:
    return current_app.config["COMPANY_NAME"]


_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@bp.get("/assets/brand.css")
def brand_css():
    """The company's colour for the candidates' pages (a stylesheet: no inline style)."""
    colour = str(current_app.config.get("BRAND_COLOR") or "")
    if not _COLOUR.fullmatch(colour):
        colour = "#2f5bd3"
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    # Dark text on a light brand colour, white on a dark one (WCAG's relative luminance).
    ink = "#111827" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 150 else "#ffffff"
    return Response(
        f":root {{ --brand: {colour}; --brand-ink: {ink}; }}\n",
        mimetype="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _words(candidate: Candidate) -> Words:
    """The page's words in the candidate's language (else the team's, else English)."""
    return words_for(candidate.language, current_app.config["DEFAULT_LANGUAGE"])


def _target(token: str):
    try:
        return unsubscribe_service.unsubscribe_target(db.session, _tokens(), token)
    except BadToken:
        abort(404)


def _unsubscribe_page(token: str, candidate: Candidate, **state):
    """The unsubscribe page: the question, or what happened and what the candidate may do."""
    done = candidate.status in (CandidateStatus.UNSUBSCRIBED, CandidateStatus.ERASED)
    return render_template(
        "tracking/unsubscribe.html",
        t=_words(candidate),
        done=done,
        email=candidate.email,
        company=_company(),
        action=f"/u/{token}",
        preferences=f"/p/{token}",
        reasons=unsubscribe_service.REASONS,
        forms=_form_tokens(token),
        can_resubscribe=unsubscribe_service.can_resubscribe(db.session, candidate),
        thanked=state.get("thanked") or request.args.get("thanks") == "1",
        resubscribed=state.get("resubscribed", False),
    )


@bp.get("/u/<token>")
def unsubscribe_page(token: str):
    """A small confirmation page; GET never unsubscribes (link scanners fetch every link)."""
    candidate, _ = _target(token)
    return _unsubscribe_page(token, candidate)


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """Unsubscribe at once: the RFC 8058 one-click POST, or the confirmation page's button."""
    candidate, message = _target(token)
    unsubscribe_service.unsubscribe(db.session, candidate, message, runtime.now())
    db.session.commit()
    if request.form.get("List-Unsubscribe") == "One-Click":
        return Response("unsubscribed\n", mimetype="text/plain")
    return _unsubscribe_page(token, candidate)


@bp.post("/u/<token>/reason")
def unsubscribe_reason(token: str):
    """Why they left, if they say (both the choice and the words are optional)."""
    candidate = _form_guard(token, "reason")
    if candidate.status != CandidateStatus.UNSUBSCRIBED:
        return redirect(url_for("tracking.unsubscribe_page", token=token), code=303)
    try:
        unsubscribe_service.record_reason(
            db.session,
            candidate,
            request.form.get("reason", ""),
            request.form.get("note", ""),
            runtime.now(),
        )
    except ValidationError:
        abort(400, "Choose one of the reasons offered.")
    db.session.commit()
    return redirect(url_for("tracking.unsubscribe_page", token=token, thanks=1), code=303)


@bp.post("/u/<token>/resubscribe")
def resubscribe(token: str):
    """They changed their mind: mail again, with their consent recorded."""
    candidate = _form_guard(token, "resubscribe")
    unsubscribe_service.resubscribe(db.session, candidate, runtime.now())
    db.session.commit()
    return _unsubscribe_page(token, candidate, resubscribed=candidate.status == "active")


# --- the preference centre ---------------------------------------------------------------------
#
# The page is reached from mail, with no login and no session: the signed token in the URL is the
# authority, as for unsubscribing. A session CSRF token cannot work without a session, so each
# form carries its own: a signed, timestamped value bound to this URL token and this action
# (core/compliance/preferences.form_token). A page on another site that got hold of the URL
# (a forwarded mail, a Referer) cannot submit a change blind: it must send a value only our page
# hands out, for that action, within a day. Browsers that say a POST is cross-site
# (Sec-Fetch-Site) are refused outright. The RFC 8058 one-click POST on /u/ keeps working without
# any of this: mail providers send it without a page.


def _form_tokens(token: str) -> dict[str, str]:
    tokens, now = _tokens(), runtime.now()
    actions = (
        "topics", "pause", "unpause", "tracking", "download", "delete", "stay", "reason",
        "resubscribe", "language",
    )  # fmt: skip
    return {a: preference_service.form_token(tokens, token, a, now) for a in actions}


def _form_guard(token: str, action: str) -> Candidate:
    """The candidate of a preference POST, once its URL token and form token check out."""
    candidate, _ = _target(token)
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403)
    try:
        preference_service.check_form_token(
            _tokens(), token, action, request.form.get("form_token", ""), runtime.now()
        )
    except BadToken:
        abort(400, "This form has expired or did not come from our page: reload and try again.")
    return candidate


def _page(token: str, candidate: Candidate, status: int = 200, **extra):
    now = runtime.now()
    words = _words(candidate)
    done = request.args.get("done", "")
    return render_template(
        "tracking/preferences.html",
        t=words,
        token=token,
        candidate=candidate,
        company=_company(),
        topics=[
            (
                topic.value,
                words[f"topic_{topic.value}"],
                preference_service.wants_topic(candidate, topic),
            )
            for topic in Topic
        ],
        languages=wording.choices(candidate.language),
        paused=preference_service.is_paused(candidate, now),
        unsubscribed=candidate.status not in (CandidateStatus.ACTIVE, CandidateStatus.SUNSET),
        erased=candidate.status == CandidateStatus.ERASED,
        sunset=candidate.status == CandidateStatus.SUNSET,
        forms=_form_tokens(token),
        can_resubscribe=unsubscribe_service.can_resubscribe(db.session, candidate),
        done=words[f"done_{done}"] if done in DONE else "",
        # A sunset candidate comes back by saying yes here (pool health's re-consent rule).
        ask_consent=extra.pop("ask_consent", request.args.get("stay") == "1")
        or candidate.status == CandidateStatus.SUNSET,
        **extra,
    ), status


@bp.get("/p/<token>")
def preferences(token: str):
    """The preference centre: topics, pause, tracking, unsubscribe, download, delete."""
    candidate, _ = _target(token)
    return _page(token, candidate)


def _change(token: str, action: str, apply: Callable[[Candidate], object]):
    candidate = _form_guard(token, action)
    if candidate.status == CandidateStatus.ERASED:
        return redirect(url_for("tracking.preferences", token=token), code=303)
    apply(candidate)
    db.session.commit()
    # Post/redirect/get: reloading the page on a phone does not post the form again.
    return redirect(url_for("tracking.preferences", token=token, done=action), code=303)


@bp.post("/p/<token>/topics")
def save_topics(token: str):
    """Keep the ticked topics, turn the others off."""
    wanted = {t for t in Topic if request.form.get(t) == "on"}
    return _change(
        token, "topics", lambda c: preference_service.set_topics(c, wanted, runtime.now())
    )


@bp.post("/p/<token>/pause")
def pause(token: str):
    """Hold every mail for three months."""
    return _change(token, "pause", lambda c: preference_service.pause(c, runtime.now()))


@bp.post("/p/<token>/unpause")
def unpause(token: str):
    """End a pause now."""
    return _change(token, "unpause", lambda c: preference_service.unpause(c, runtime.now()))


@bp.post("/p/<token>/tracking")
def tracking(token: str):
    """Turn open and click tracking off (or on again) for this candidate."""
    opt_out = request.form.get("opt_out") == "on"
    return _change(
        token,
        "tracking",
        lambda c: preference_service.set_tracking_opt_out(c, opt_out, runtime.now()),
    )


@bp.post("/p/<token>/language")
def language(token: str):
    """Write to me in this language (mail, footer and these pages); "" for the team's."""
    candidate = _form_guard(token, "language")
    if candidate.status == CandidateStatus.ERASED:
        return redirect(url_for("tracking.preferences", token=token), code=303)
    try:
        preference_service.set_language(candidate, request.form.get("language", ""), runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        return _page(token, candidate, status=422, language_error=exc.fields["language"])
    db.session.commit()
    return redirect(url_for("tracking.preferences", token=token, done="language"), code=303)


@bp.post("/p/<token>/stay")
def stay(token: str):
    """Yes, keep me in the talent network: record consent."""
    return _change(token, "stay", lambda c: retention_service.confirm_consent(c, runtime.now()))


@bp.post("/p/<token>/download")
def download(token: str):
    """Everything we hold about the candidate, as a JSON file."""
    candidate = _form_guard(token, "download")
    data = preference_service.export_data(db.session, candidate, runtime.now())
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-data.json"',
            "Cache-Control": "no-store, private",
        },
    )


@bp.get("/p/<token>/delete")
def delete_page(token: str):
    """Ask once more before deleting: erasure cannot be undone."""
    candidate, _ = _target(token)
    return _page(token, candidate, confirm_delete=True)


@bp.post("/p/<token>/delete")
def delete(token: str):
    """Erase the candidate; their address is kept only as a hash so we never write again."""
    candidate = _form_guard(token, "delete")
    preference_service.erase_self(db.session, candidate, runtime.now())
    db.session.commit()
    return redirect(url_for("tracking.preferences", token=token), code=303)


# --- re-consent and ratings ----------------------------------------------------------------------


@bp.get("/k/<token>")
def reconsent_page(token: str):
    """The re-consent mail's button lands here; consent is one more click, never the GET.

    Link scanners fetch every link in a mail: a GET that recorded consent would keep people
    nobody asked. The page's button posts to the preference centre's "stay" action.
    """
    candidate, _ = _target(token)
    return _page(token, candidate, ask_consent=True)


def _rated(token: str):
    try:
        return ratings.rating_target(db.session, _tokens(), token)
    except BadToken:
        abort(404)


def _rating_page(token: str, value: int, *, answer: str = "", error: str = "", status=200):
    """The thank-you for a rating, with the one question that may follow it."""
    return render_template(
        "tracking/rating.html",
        value=value,
        company=_company(),
        question=answers.QUESTION,
        max_answer=answers.MAX_ANSWER,
        action=url_for("tracking.rating_answer", token=token),
        form_token=preference_service.form_token(_tokens(), token, "feedback", runtime.now()),
        answer=answer,
        error=error,
        done=request.args.get("done") == "1",
    ), status


@bp.get("/r/<token>")
def rating(token: str):
    """Record a one-click interview rating, thank the candidate and ask one optional question."""
    message, value = _rated(token)
    if request.args.get("done") != "1":
        ratings.record_rating(db.session, message, value, _user_agent(), runtime.now())
        db.session.commit()
    return _rating_page(token, value)


@bp.post("/r/<token>/answer")
def rating_answer(token: str):
    """Store the candidate's answer to "what could we have done better?" (post/redirect/get)."""
    message, value = _rated(token)
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403)
    try:
        preference_service.check_form_token(
            _tokens(), token, "feedback", request.form.get("form_token", ""), runtime.now()
        )
    except BadToken:
        abort(400, "This form has expired or did not come from our page: reload and try again.")
    text = request.form.get("answer", "")
    try:
        answers.record_answer(db.session, message, text, runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        return _rating_page(
            token, value, answer=text[: answers.MAX_ANSWER * 2], error=exc.fields["answer"],
            status=422,
        )  # fmt: skip
    db.session.commit()
    return redirect(url_for("tracking.rating", token=token, done=1), code=303)
