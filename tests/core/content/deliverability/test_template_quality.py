"""Content quality of every starter as a candidate receives it, checked on the parsed HTML."""

from __future__ import annotations

import re
from copy import deepcopy
from difflib import SequenceMatcher

import pytest
from lxml import html as lxml_html
from lxml.html import HtmlElement

from nurture.core.content.rendering import TemplateLibrary
from tests.core.content.deliverability.conftest import (
    BASE_URL,
    SETTINGS,
    STARTERS,
    TOKENS,
    SentMail,
    render_as_sent,
)

MAX_WIDTH = 640  # wider than this and a phone shrinks the mail or scrolls it sideways
MIN_FONT_PX = 14  # smaller body text is hard to read on a phone
SAME_WORDING = 0.8  # share of an HTML paragraph's words the text part must say, in order
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
GENERIC_LINK_TEXT = {"click here", "here", "click", "this link", "link", "more", "read more"}


@pytest.fixture(params=STARTERS)
def sent(request: pytest.FixtureRequest, library: TemplateLibrary) -> SentMail:
    """A starter as sent to the realistic candidate."""
    return render_as_sent(library, request.param)


@pytest.fixture
def doc(sent: SentMail) -> HtmlElement:
    """The HTML part, parsed."""
    return lxml_html.document_fromstring(sent.html)


def words(text: str) -> str:
    """Text with its white space collapsed, as a reader sees it."""
    return " ".join(text.split())


def visible(element: HtmlElement) -> str:
    """The words of an element as a reader sees them (a line break separates words too)."""
    element = deepcopy(element)
    for line_break in element.iter("br"):
        line_break.tail = " " + (line_break.tail or "")
    return words(element.text_content())


def style(element: HtmlElement) -> dict[str, str]:
    """The inline style of an element (premailer put the layout's rules there)."""
    declarations = (part.partition(":") for part in element.get("style", "").split(";"))
    return {name.strip().lower(): value.strip() for name, _, value in declarations if value}


def px(value: str) -> float | None:
    """A CSS length in px, or None for other units."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)px", value.strip())
    return float(found.group(1)) if found else None


def too_wide(width: str) -> bool:
    """Whether a width attribute or property could push past a phone's screen."""
    width = width.strip()
    if width in ("", "auto") or width.endswith("%"):
        return False
    pixels = float(width) if width.isdigit() else px(width)
    return pixels is None or pixels > MAX_WIDTH


def by_class(doc: HtmlElement, name: str) -> list[HtmlElement]:
    return doc.find_class(name)


def destination(href: str) -> str:
    """Where a link takes the reader, through the click redirect when it is tracked."""
    if href.startswith(f"{BASE_URL}/c/"):
        _, url = TOKENS.load("click", href.rsplit("/", 1)[1])
        return url
    return href


def key_sentences(doc: HtmlElement) -> list[str]:
    """What the candidate reads in the card: headings, paragraphs and list items."""
    (card,) = by_class(doc, "card")
    return [
        visible(element)
        for element in card.iter("h1", "h2", "p", "li")
        if "eyebrow" not in element.classes and visible(element)
    ]


def test_a_hidden_preheader_leads_the_body(sent: SentMail, doc: HtmlElement) -> None:
    (preheader,) = by_class(doc, "preheader")
    assert doc.body[0] is preheader, "the preheader must come first, or inboxes preview the rest"
    text = visible(preheader)
    assert 30 <= len(text) <= 150, text
    assert text != sent.subject
    hidden = style(preheader)
    assert hidden.get("display") == "none" and hidden.get("max-height") == "0"
    assert hidden.get("opacity") == "0" and hidden.get("mso-hide") == "all"
    # SpamAssassin scores tiny or background-coloured text as hidden spam (FONT_INVIS_*).
    assert "font-size" not in hidden and "color" not in hidden


def test_every_image_has_alt_text(doc: HtmlElement) -> None:
    images = list(doc.iter("img"))
    assert images, "the open pixel is missing"
    for image in images:
        assert "alt" in image.attrib, lxml_html.tostring(image)
        if (image.get("width"), image.get("height")) == ("1", "1"):
            assert image.get("alt") == ""  # the pixel: screen readers skip it
        else:
            assert image.get("alt", "").strip(), lxml_html.tostring(image)


def said_at(sentence: str, text: str) -> int | None:
    """Where the text part finishes saying ``sentence``, or None when it does not say it.

    A text twin may word a line its own way ("confirm here:" and a URL where the HTML says
    "confirm with the button below"), so most of the words, in order, are enough.
    """
    wanted = [word.lower() for word in WORD.findall(sentence)]
    found = list(WORD.finditer(text))
    have = [word.group(0).lower() for word in found]
    best, end = 0.0, None
    for start in (n for n, word in enumerate(have) if word in wanted[:3]):
        window = have[start : start + len(wanted) + 3]
        blocks = SequenceMatcher(None, wanted, window, autojunk=False).get_matching_blocks()
        share = sum(block.size for block in blocks) / len(wanted)
        if share > best:
            last = max(block.b + block.size for block in blocks if block.size)
            best, end = share, found[start + last - 1].end()
    return end if best >= SAME_WORDING else None


def test_the_text_part_is_the_whole_mail(sent: SentMail, doc: HtmlElement) -> None:
    assert len(words(sent.text)) > 200
    assert "<" not in sent.text and "{{" not in sent.text and "&#" not in sent.text
    ends = []
    for sentence in key_sentences(doc):
        ends.append(said_at(sentence, sent.text))
        assert ends[-1] is not None, f"{sentence!r} is missing from the text part"
    for link in by_class(doc, "card")[0].iter("a"):
        assert destination(link.get("href")) in sent.text
    footer = sent.text[max(ends) :]
    for required in (sent.unsubscribe_url, sent.preferences_url, SETTINGS.postal_address):
        assert required in footer, f"{required} belongs in the footer, after the message"


def test_no_external_css_scripts_or_active_content(sent: SentMail, doc: HtmlElement) -> None:
    for tag in ("script", "iframe", "object", "embed", "form", "base"):
        assert not list(doc.iter(tag)), tag
    for link in doc.iter("link"):
        assert "stylesheet" not in link.get("rel", "").lower()
    for sheet in doc.iter("style"):
        assert "@import" not in sheet.text_content() and "url(" not in sheet.text_content()
    for element in doc.iter():
        if isinstance(element, HtmlElement):
            assert not [name for name in element.attrib if name.lower().startswith("on")]
            assert "url(" not in element.get("style", "")


def test_the_layout_reads_on_a_phone(doc: HtmlElement) -> None:
    viewport = doc.find(".//meta[@name='viewport']")
    assert viewport is not None and "width=device-width" in viewport.get("content", "")
    (container,) = by_class(doc, "container")
    assert container.get("width") == "100%" and style(container).get("width") == "100%"
    max_width = px(style(container).get("max-width", ""))
    assert max_width is not None and max_width <= MAX_WIDTH
    assert re.search(r"@media\s*\(max-width:\s*\d+px\)", doc.find(".//style").text_content())
    for element in doc.body.iter():
        if not isinstance(element, HtmlElement) or "preheader" in element.classes:
            continue
        declared = style(element)
        for width in (element.get("width", ""), declared.get("width", "")):
            assert not too_wide(width), lxml_html.tostring(element)[:200]
        size = px(declared.get("font-size", ""))
        assert size is None or size >= MIN_FONT_PX, lxml_html.tostring(element)[:200]


def test_every_link_has_visible_descriptive_text(doc: HtmlElement) -> None:
    links = list(doc.iter("a"))
    assert links
    for link in links:
        text = visible(link)
        assert text, f"an empty link to {link.get('href')}"
        assert text.lower().strip(".!:") not in GENERIC_LINK_TEXT, text
        assert "click here" not in text.lower(), text
        assert link.get("href", "").startswith("https://"), link.get("href")
        assert style(link).get("display") != "none"


def test_the_footer_has_the_postal_address_and_unsubscribe_link(
    sent: SentMail, doc: HtmlElement
) -> None:
    (footer,) = by_class(doc, "footer")
    (card,) = by_class(doc, "card")
    order = list(doc.iter())
    assert order.index(footer) > order.index(card), "the footer closes the mail"
    assert SETTINGS.postal_address in visible(footer)
    links = {visible(link): link.get("href") for link in footer.iter("a")}
    assert links.get("Unsubscribe") == sent.unsubscribe_url
    assert links.get("Email preferences") == sent.preferences_url
