"""Headless Chromium on /roster: a swap written to the database appears without a reload.

Needs Chromium, chromedriver and selenium. Without them the test is skipped, unless
``HARMONY_TEST_BROWSER=1`` (CI) says a browser must be there: then it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.sandbox_server import serving
from api.app import create_app
from hub.settings import Settings
from hub.users import create_user
from tests.scheduling.live_roster_rows import (
    add_physician,
    add_roster,
    add_shift,
    add_shift_type,
    now,
    swap,
)

CHROMIUM = os.environ.get("HARMONY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HARMONY_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def _missing() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return missing


@contextmanager
def chromium() -> Iterator[Any]:
    """A fresh headless Chromium (its own profile); skip, or fail when CI requires it."""
    missing = _missing()
    if missing:
        reason = f"headless browser test needs {', '.join(missing)}"
        if os.environ.get("HARMONY_TEST_BROWSER") == "1":
            pytest.fail(f"HARMONY_TEST_BROWSER=1 but {reason}")
        pytest.skip(f"{reason} (apt-get install chromium chromium-driver; pip install selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="harmony-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"after {timeout}s still waiting for {what}")


def on_call_names(driver: Any, key: str) -> list[str]:
    return list(
        driver.execute_script(
            "const card = document.querySelector(`article[data-key='${arguments[0]}']`);"
            "return card ? [...card.querySelectorAll('.oncall')].map(n => n.textContent) : [];",
            key,
        )
    )


def sign_in(driver: Any, base_url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/roster")
    wait_for(lambda: driver.find_element(By.ID, "signin").is_displayed(), 10, "the sign-in form")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys("pw")
    driver.find_element(By.CSS_SELECTOR, "#signin button").click()


def test_a_swap_appears_on_the_page_without_reload(engine: Engine) -> None:
    with chromium() as browser:
        check_swap_appears(engine, browser)


def check_swap_appears(engine: Engine, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    ada, bo = add_physician(engine, "Dr Ada"), add_physician(engine, "Dr Bo")
    cy = add_physician(engine, "Dr Cy")
    cardio = add_shift_type(engine, "CARD-CALL", "cardiology", "main")
    neuro = add_shift_type(engine, "NEURO-CALL", "neurology", "north", tz="America/New_York")
    roster = add_roster(engine, "June")
    start = now() - timedelta(hours=2)
    tonight = add_shift(engine, roster, cardio, ada, start, start + timedelta(hours=12))
    tomorrow = add_shift(
        engine, roster, cardio, bo, start + timedelta(hours=12), start + timedelta(hours=24)
    )
    add_shift(engine, roster, neuro, cy, start, start + timedelta(hours=12))
    create_user(engine, "desk", roles={"call_center"}, password="pw")
    create_user(engine, "pat", roles={"patient"}, password="pw")
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))

    with serving(create_app(settings, engine=engine)) as base_url:
        sign_in(browser, base_url, "pat")
        error = browser.find_element(By.ID, "signin-error")
        wait_for(lambda: "cannot read" in error.text, 10, "the patient to be refused")

        sign_in(browser, base_url, "desk")
        wait_for(lambda: on_call_names(browser, "cardiology|main") == ["Dr Ada"], 10, "Dr Ada")
        assert on_call_names(browser, "neurology|north") == ["Dr Cy"]
        wait_for(lambda: browser.find_element(By.ID, "status").text == "live", 5, "live")
        browser.execute_script("window.__notReloaded = true;")

        began = time.monotonic()
        event_id = swap(engine, tonight, tomorrow)
        wait_for(
            lambda: on_call_names(browser, "cardiology|main") == ["Dr Bo"], 3, "the swap to show"
        )
        elapsed = time.monotonic() - began
        assert elapsed < 1.5, f"the swap took {elapsed:.2f}s to reach the page"
        assert browser.execute_script("return window.__notReloaded === true;")
        change = browser.find_element(By.CSS_SELECTOR, f"#recent li[data-event-id='{event_id}']")
        assert "swap Dr Ada \u2194 Dr Bo" in change.text
        card = "article[data-key='cardiology|main']"
        upcoming = browser.find_element(By.CSS_SELECTOR, f"{card} .next")
        assert "Dr Ada" in upcoming.text
        assert on_call_names(browser, "neurology|north") == ["Dr Cy"]  # untouched
        browser.get("about:blank")  # closes the stream before the server stops
