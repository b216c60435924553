"""Every starter in Chromium at a phone's and a desktop's width, saved for people to look at."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nurture.core.content.rendering import TemplateLibrary
from tests.conftest import require
from tests.core.content.deliverability.conftest import STARTERS, render_as_sent
from tests.support.paths import ARTIFACTS
from tests.web.admin.conftest import CHROMIUM_ARGS, chromium_path

PHONE, DESKTOP = 390, 800

# Measured in the page: what overflows, how wide the mail is, whether the hidden parts stay hidden.
MEASURE = """() => {
  const box = (selector) => document.querySelector(selector).getBoundingClientRect();
  const card = box('.card');
  const overflowing = [...document.querySelectorAll('.card *, .footer *')]
    .filter((el) => el.getBoundingClientRect().right > card.right + 0.5
                 || el.getBoundingClientRect().left < card.left - 0.5)
    .map((el) => el.outerHTML.slice(0, 120));
  const buttons = [...document.querySelectorAll('.button-link')]
    .map((el) => el.getBoundingClientRect().width);
  const preheader = document.querySelector('.preheader').getBoundingClientRect();
  const paragraph = document.querySelector('.card p:not(.eyebrow)');
  return {
    scrollWidth: document.documentElement.scrollWidth,
    container: box('.container').width,
    card: card.width,
    overflowing: overflowing,
    buttons: buttons,
    preheaderArea: preheader.width * preheader.height,
    fontSize: parseFloat(getComputedStyle(paragraph).fontSize),
  };
}"""


class Chromium:
    """Headless Chromium in a thread of its own, with a tab that cannot reach the network.

    The admin tests keep a sync Playwright running in the main thread for the whole session,
    and a second one cannot start there; each thread may have its own, so this one gets a thread.
    """

    def __init__(self, executable: str) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._thread.submit(self._start, executable).result()

    def _start(self, executable: str) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS
        )
        context = self._browser.new_context(viewport={"width": DESKTOP, "height": 900})
        context.route("**/*", lambda route: route.abort())  # the open pixel stays unfetched
        self._page = context.new_page()
        self._page.set_default_timeout(15000)

    def _shoot(self, html: str, path: Path, width: int) -> dict:
        self._page.set_viewport_size({"width": width, "height": 900})
        self._page.set_content(html, wait_until="load")
        self._page.screenshot(path=str(path), full_page=True)
        return self._page.evaluate(MEASURE)

    def shoot(self, html: str, name: str, width: int) -> dict:
        """Render ``html`` at ``width``, save a full-page screenshot and measure the layout."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"email-{name}-{width}.png"
        return self._thread.submit(self._shoot, html, path, width).result()

    def close(self) -> None:
        """Close the browser and stop Playwright, in their thread."""

        def stop() -> None:
            self._browser.close()
            self._playwright.stop()

        self._thread.submit(stop).result()
        self._thread.shutdown()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """One Chromium for the module."""
    executable = chromium_path()
    require(executable is not None, "Chromium (apt-get install chromium)")
    browser = Chromium(executable)
    yield browser
    browser.close()


@pytest.mark.parametrize("name", STARTERS)
def test_a_starter_fits_a_phone_and_reads_on_a_desktop(
    chromium: Chromium, library: TemplateLibrary, name: str
) -> None:
    html = render_as_sent(library, name).html

    phone = chromium.shoot(html, name, PHONE)
    assert phone["scrollWidth"] <= PHONE, f"{name} scrolls sideways at {PHONE}px: {phone}"
    assert not phone["overflowing"], phone["overflowing"]
    assert phone["container"] >= PHONE - 20, "the mail should use the phone's whole width"
    # The media query makes buttons full width: a thumb-sized target on a phone.
    assert all(width >= phone["card"] - 2 * 20 - 1 for width in phone["buttons"]), phone
    assert phone["preheaderArea"] == 0 and phone["fontSize"] >= 16

    desktop = chromium.shoot(html, name, DESKTOP)
    assert desktop["scrollWidth"] <= DESKTOP
    assert not desktop["overflowing"], desktop["overflowing"]
    assert desktop["container"] <= 600, "lines longer than 600px are hard to read"
    assert desktop["preheaderArea"] == 0 and desktop["fontSize"] >= 16
