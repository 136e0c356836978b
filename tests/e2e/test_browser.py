"""The donation form and the sample pages in a real browser: headless Chromium driven by Selenium
against the local stack (the form's Stripe.js is the Stripe emulator's stand-in).

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``)
and ``selenium`` from PyPI. Nothing is downloaded at run time: the driver and browser paths are given,
so Selenium Manager never runs. A missing browser fails these tests (it does not skip them).
Screenshots go to ``artifacts/browser/`` under the repository root.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from donations.pledges import renewal_donation_id
from simulator.emulators.sendgrid_emulator import SendGridControl
from simulator.local.process import ROOT, RunningStack
from tests.e2e.conftest import run_ops, wait_for
from tests.e2e.test_monthly_giving import _pledge_now, _run_schedule, _tables
from tests.support.keys import a_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Nothing may be fetched: no Selenium Manager, no driver or browser download.
os.environ["SE_OFFLINE"] = "true"

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
ARTIFACTS = ROOT / "artifacts" / "browser"
VIEWPORT = (1280, 900)
WAIT_SECONDS = 30  # a receipt normally arrives in about a second
INSTALL_HINT = (
    "apt-get update && apt-get install -y chromium chromium-driver, and pip install selenium "
    "(or set CHROMIUM_BINARY / CHROMEDRIVER_BINARY)"
)

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as missing:  # pragma: no cover - reported by the browser fixture
    SELENIUM_IMPORT_ERROR: ImportError | None = missing
else:
    SELENIUM_IMPORT_ERROR = None


def _chromium_options(user_data_dir: str) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--password-store=basic",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        f"--user-data-dir={user_data_dir}",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if SELENIUM_IMPORT_ERROR is not None:
        pytest.fail(f"selenium is not installed ({SELENIUM_IMPORT_ERROR}); {INSTALL_HINT}", pytrace=False)
    for what, path in (("Chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            found = shutil.which(Path(path).name)
            pytest.fail(
                f"{what} not found at {path}{f' (but {found} exists)' if found else ''}; {INSTALL_HINT}",
                pytrace=False,
            )
    user_data_dir = tempfile.mkdtemp(prefix="donations-chromium-")
    service = Service(executable_path=CHROMEDRIVER)
    try:
        driver = webdriver.Chrome(service=service, options=_chromium_options(user_data_dir))
    except WebDriverException as error:
        shutil.rmtree(user_data_dir, ignore_errors=True)
        pytest.fail(f"Chromium did not start: {error.msg}; {INSTALL_HINT}", pytrace=False)
    set_viewport(driver, VIEWPORT[1])
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(user_data_dir, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------------


def wait_until(
    driver: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout: float = WAIT_SECONDS
) -> Any:
    """WebDriverWait with a failure message that says what the page showed instead."""
    try:
        # A redrawn element between finding and reading it is another poll, not a failure
        return WebDriverWait(
            driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; page state: {page_state(driver)}"
        ) from None


def page_state(driver: WebDriver) -> dict[str, str | None]:
    state: dict[str, str | None] = {"url": driver.current_url}
    for element_id in ("dn-alert", "dn-status", "dn-thanks", "pledge-page"):
        found = driver.find_elements(By.ID, element_id)
        if found:
            state[element_id] = found[0].text
    form = driver.find_elements(By.ID, "donation-form")
    if form:
        state["last_status"] = form[0].get_attribute("data-last-status")
    return state


def set_viewport(driver: WebDriver, height: int, width: int = VIEWPORT[0], *, mobile: bool = False) -> None:
    """A viewport of the given size (the window's toolbar would otherwise take some of it)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page (not just the viewport), from the top, to artifacts/browser/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.execute_script("window.scrollTo(0, 0)")
    height = int(driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)"))
    set_viewport(driver, max(VIEWPORT[1], min(height, 4000)))
    try:
        assert driver.save_screenshot(str(path)), f"could not save {path}"
    finally:
        set_viewport(driver, VIEWPORT[1])
    assert path.is_file() and path.stat().st_size > 0, f"empty screenshot {path}"
    return path


def visible(driver: WebDriver, element_id: str) -> WebElement | bool:
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else False


# -- the donation form (static/form/) against the emulators ----------------------------------------
# Stripe's test cards (docs.stripe.com/testing): typed into the Payment Element's frame, as a donor does.
VISA = "4242424242424242"
THREE_D_SECURE = "4000002760003184"  # authentication required on every payment
AUTHENTICATE_ON_SETUP = "4000002500003155"  # authentication once when set up; then off-session needs none
INSUFFICIENT_FUNDS = "4000000000009995"


def open_form(driver: WebDriver, stack: RunningStack) -> None:
    driver.get(f"{stack.api}/")
    wait_until(
        driver,
        lambda d: d.find_element(By.ID, "donation-form").get_attribute("data-ready") == "true",
        "the form to load Stripe.js and mount the Payment Element",
    )


def type_card(
    driver: WebDriver, number: str, expiry: str = "12 / 34", cvc: str = "123", *, within: str = "#dn-payment"
) -> None:
    """Into the Payment Element's frame (the Stripe.js stand-in's, of the Stripe emulator's origin)."""
    frame = wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"{within} iframe"), "the element")[0]
    driver.switch_to.frame(frame)
    try:
        for field_id, value in (("number", number), ("expiry", expiry), ("cvc", cvc)):
            field = wait_until(driver, lambda d, f=field_id: d.find_elements(By.ID, f), f"the {field_id} field")[0]
            field.clear()
            field.send_keys(value)
    finally:
        driver.switch_to.default_content()


def fill_form(
    driver: WebDriver, *, card: str, save_card: bool = False, amount: str = "25.00", currency: str = "usd"
) -> str:
    email = f"ada+{uuid.uuid4().hex[:10]}@example.org"
    Select(driver.find_element(By.ID, "dn-currency")).select_by_value(currency)
    amount_input = driver.find_element(By.ID, "dn-amount")
    amount_input.clear()
    amount_input.send_keys(amount)
    driver.find_element(By.ID, "dn-name").send_keys("Ada Lovelace")
    driver.find_element(By.ID, "dn-email").send_keys(email)
    checkbox = driver.find_element(By.ID, "dn-save")
    if checkbox.is_selected() != save_card:
        checkbox.click()
    type_card(driver, card)
    return email


def submit(driver: WebDriver) -> None:
    button = driver.find_element(By.ID, "dn-submit")
    assert button.is_enabled(), "the Donate button is disabled"
    button.click()


def enabled(driver: WebDriver, element_id: str) -> WebElement | bool:
    found = visible(driver, element_id)
    return found if found and found.is_enabled() else False


def challenge_frame(driver: WebDriver) -> WebElement:
    """The 3-D Secure challenge stripe.handleNextAction opened (the stand-in's frame, in a modal dialog)."""
    return wait_until(driver, lambda d: visible(d, "stripe-challenge-frame"), "the 3-D Secure challenge")


def answer_challenge(driver: WebDriver, frame: WebElement, button_id: str) -> None:
    """Click "complete" or "fail" in the challenge frame, once its buttons are enabled."""
    driver.switch_to.frame(frame)
    try:
        wait_until(driver, lambda d: enabled(d, button_id), "the challenge's buttons").click()
    finally:
        driver.switch_to.default_content()


def thanked(driver: WebDriver) -> WebElement:
    return wait_until(driver, lambda d: visible(d, "dn-thanks"), "the thank-you message")


def alert_text(driver: WebDriver) -> str:
    return str(wait_until(driver, lambda d: d.find_element(By.ID, "dn-alert").text.strip(), "an error message"))


def front_requests(stack: RunningStack) -> dict[str, int]:
    """API requests the local front received, by "METHOD /path"."""
    return dict(requests.get(f"{stack.api}/_local/front/requests", timeout=5).json())


# Every POST /donations the page sends: its Idempotency-Key and body.
RECORD_DONATION_POSTS = """
window.__posts = [];
window.__warmups = [];
const originalFetch = window.fetch;
window.fetch = (url, options) => {
  const path = new URL(url, location.href).pathname;
  if (path === "/donations") window.__posts.push({key: options.headers["Idempotency-Key"], body: options.body});
  if (path === "/warmup") window.__warmups.push(options);
  return originalFetch(url, options);
};
"""


def test_card_gift_saves_the_card_and_its_receipt_reaches_the_outbox(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    # Given the form, with a card typed into the Payment Element and "save my card" ticked
    open_form(browser, local_stack)
    browser.execute_script(RECORD_DONATION_POSTS)
    email = fill_form(browser, card=VISA, save_card=True)
    screenshot(browser, "donation-form")

    # When the donor donates, and submits again twice while it is being sent
    assert browser.find_element(By.ID, "dn-submit").is_enabled()
    browser.execute_script(
        "const form = document.querySelector('#donation-form form');"
        "document.getElementById('dn-submit').click(); form.requestSubmit(); form.requestSubmit();"
    )

    # Then the page thanks them once the API confirmed the gift, and the receipt was sent
    thanks = thanked(browser)
    assert "Thank you, Ada Lovelace!" in thanks.text and "$25.00" in thanks.text and email in thanks.text
    donation_id = browser.find_element(By.ID, "donation-form").get_attribute("data-donation-id")
    assert re.fullmatch(r"don_[a-z2-7]{26}", donation_id or ""), donation_id
    # The API got one donation, with a PaymentMethod the element created (an emulator object, not pm_card_*)
    posts = browser.execute_script("return window.__posts")
    assert len(posts) == 1
    sent = json.loads(posts[0]["body"])
    assert re.fullmatch(r"pm_[A-Za-z0-9]{24}", sent["payment_method"]), sent
    assert sent == {**sent, "amount": 2500, "currency": "usd", "save_card": True, "name": "Ada Lovelace"}
    wait_until(
        browser,
        lambda d: requests.get(f"{local_stack.api}/donations/{donation_id}", timeout=5).json()["card_saved"],
        "the card to be saved",
    )
    screenshot(browser, "donation-thanks")

    browser.get(f"{local_stack.api}/outbox?donation={donation_id}")
    receipt_row = f'#outbox tbody tr[data-donation-id="{donation_id}"]'
    # (Read and clicked in the poll that finds it: the outbox redraws its rows, "5 s ago", every 2 s.)
    row_text = wait_until(
        browser,
        lambda d: (found := d.find_elements(By.CSS_SELECTOR, receipt_row)) and found[0].text,
        f"the receipt of {donation_id} in the outbox",
    )
    assert email in row_text and "Ada Lovelace" in row_text
    outbox_png = screenshot(browser, "outbox")

    # The receipt as the donor reads it: the installed template, rendered by the SendGrid emulator.
    wait_until(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, receipt_row).find_element(By.LINK_TEXT, "View receipt").click() or True
        ),
        "the receipt's link",
    )
    frame = wait_until(browser, lambda d: visible(d, "receipt-html"), "the rendered receipt")
    browser.switch_to.frame(frame)
    try:
        receipt = wait_until(browser, lambda d: d.find_elements(By.TAG_NAME, "h1"), "the receipt's heading")[0]
        assert receipt.text == "Thank you, Ada Lovelace"
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "$25.00" in body and donation_id in body and "Example Charity" in body
    finally:
        browser.switch_to.default_content()
    receipt_png = screenshot(browser, "receipt")
    browser.find_element(By.CSS_SELECTOR, '[data-width="375px"]').click()
    receipt_phone_png = screenshot(browser, "receipt-phone")
    for png in (outbox_png, receipt_png, receipt_phone_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"


def test_three_d_secure_gift_is_finished_in_the_page(browser: WebDriver, local_stack: RunningStack) -> None:
    # Given a card that asks for 3-D Secure on every payment
    open_form(browser, local_stack)
    fill_form(browser, card=THREE_D_SECURE)
    submit(browser)

    # Then the API's 202 opens the bank's challenge (stripe.handleNextAction) in a modal dialog
    frame = challenge_frame(browser)
    assert browser.find_element(By.CSS_SELECTOR, '[role="dialog"][aria-modal="true"]').is_displayed()
    assert browser.find_element(By.ID, "donation-form").get_attribute("data-last-status") == "202"
    screenshot(browser, "three-d-secure")
    answer_challenge(browser, frame, "complete")

    # And, authenticated, Stripe's webhook completes the donation: the page thanks the donor
    thanks = thanked(browser)
    assert "is complete" in thanks.text
    assert not browser.find_elements(By.ID, "stripe-challenge-frame"), "the challenge should be closed"
    donation_id = browser.find_element(By.ID, "donation-form").get_attribute("data-donation-id")
    outbox = requests.get(f"{local_stack.api}/_local/outbox", timeout=10).json()["emails"]
    assert [m["custom_args"]["donation_id"] for m in outbox].count(donation_id) == 1
    screenshot(browser, "three-d-secure-completed")


def test_failed_three_d_secure_says_nothing_was_charged_and_keeps_the_form(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    open_form(browser, local_stack)
    fill_form(browser, card=THREE_D_SECURE)
    submit(browser)
    answer_challenge(browser, challenge_frame(browser), "fail")

    text = alert_text(browser)
    assert "Authentication failed" in text and "Nothing was charged" in text, text
    assert browser.find_element(By.ID, "dn-name").get_attribute("value") == "Ada Lovelace"
    assert browser.find_element(By.ID, "dn-submit").is_enabled()


def test_decline_shows_its_message_keeps_the_input_and_the_next_card_is_a_new_donation(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    # Given a card Stripe declines for insufficient funds
    open_form(browser, local_stack)
    browser.execute_script(RECORD_DONATION_POSTS)
    email = fill_form(browser, card=INSUFFICIENT_FUNDS)
    submit(browser)

    # Then the decline is announced (role=alert, focused) with its reason; what the donor typed stays
    text = alert_text(browser)
    assert "insufficient funds" in text.lower() and "Nothing was charged" in text, text
    alert = browser.find_element(By.ID, "dn-alert")
    assert alert.get_attribute("role") == "alert" and browser.switch_to.active_element == alert
    assert browser.find_element(By.ID, "dn-email").get_attribute("value") == email
    assert browser.find_element(By.ID, "dn-amount").get_attribute("value") == "25.00"
    assert browser.find_element(By.ID, "donation-form").get_attribute("data-last-status") == "402"
    screenshot(browser, "declined")

    # When the donor types another card and donates again, that is a new donation with a new key
    type_card(browser, VISA)
    submit(browser)
    thanked(browser)
    posts = browser.execute_script("return window.__posts")
    assert len(posts) == 2 and posts[0]["key"] != posts[1]["key"], posts
    assert json.loads(posts[0]["body"])["payment_method"] != json.loads(posts[1]["body"])["payment_method"]


def test_retry_after_503_waits_for_retry_after_and_resends_the_same_key_and_body(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    open_form(browser, local_stack)
    browser.execute_script(RECORD_DONATION_POSTS)
    fill_form(browser, card=VISA)
    # Stripe answers 500 to every charge until the fault is removed: the API answers 503 + Retry-After.
    fault = requests.post(
        f"{local_stack.stripe}/_emulator/faults",
        json={"kind": "http_error", "status": 500, "path_prefix": "/v1/payment_intents", "method": "POST"},
        timeout=5,
    ).json()["id"]
    try:
        submit(browser)
        retry = wait_until(browser, lambda d: visible(d, "dn-retry"), "the Try again button after a 503")
        assert not retry.is_enabled() and re.fullmatch(r"Try again in \d+ s", retry.text), retry.text
        assert browser.find_element(By.ID, "donation-form").get_attribute("data-last-status") == "503"
        assert "never charged twice" in alert_text(browser)
        screenshot(browser, "service-unavailable")
    finally:
        requests.delete(f"{local_stack.stripe}/_emulator/faults/{fault}", timeout=5)

    wait_until(browser, lambda d: retry.is_enabled(), "Retry-After to pass", timeout=40)
    retry.click()
    thanked(browser)
    posts = browser.execute_script("return window.__posts")
    assert len(posts) == 2 and posts[0] == posts[1], posts  # same Idempotency-Key, same body


def test_under_attack_the_captcha_is_asked_and_answered_then_the_gift_goes_through(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    # Given the attack mode held on by an operator (donations-ops card-testing on)
    forced = run_ops(local_stack, "card-testing", "on", "--minutes", "5", "--by", "browser-test")
    assert forced.returncode == 0, forced.stderr
    try:
        open_form(browser, local_stack)
        assert not visible(browser, "dn-challenge")  # the widget is shown only when the API asks for it
        fill_form(browser, card=VISA)
        submit(browser)

        # Then the API's 403 puts the widget on the page (the Turnstile emulator's stand-in), not a failure
        box = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".turnstile-local input"), "the CAPTCHA")
        assert visible(browser, "dn-challenge")
        assert browser.find_element(By.ID, "donation-form").get_attribute("data-last-status") == "403"
        assert "human" in alert_text(browser)
        screenshot(browser, "challenge")

        # When the donor solves it, the same donation is sent again with the token, and charged
        box[0].click()
        thanked(browser)
    finally:
        released = run_ops(local_stack, "card-testing", "auto", "--close")
        assert released.returncode == 0, released.stderr


def test_the_warm_up_is_sent_once_on_the_first_focus_not_on_page_load(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    # Given the form, loaded and ready, and nothing focused yet
    before = front_requests(local_stack).get("POST /warmup", 0)
    open_form(browser, local_stack)
    browser.execute_script(RECORD_DONATION_POSTS)
    # A request the page sends after loading reaches the front after any warm-up it sent on load
    requests.get(f"{local_stack.api}/donations/don_probe", timeout=5)
    assert front_requests(local_stack).get("POST /warmup", 0) == before, "a warm-up was sent on page load"

    # When the donor focuses a field, then others
    browser.find_element(By.ID, "dn-name").click()
    wait_until(browser, lambda d: front_requests(local_stack).get("POST /warmup", 0) == before + 1, "the warm-up")
    browser.find_element(By.ID, "dn-email").click()
    browser.find_element(By.ID, "dn-amount").click()
    type_card(browser, VISA)

    # Then exactly one POST /warmup was sent: keepalive, no body, no custom headers
    sent = browser.execute_script("return window.__warmups")
    assert sent == [{"method": "POST", "keepalive": True}], sent
    assert front_requests(local_stack).get("POST /warmup", 0) == before + 1


AXE = ROOT / "tests" / "e2e" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"], iframes: false})
  .then((results) => done(results.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
     nodes: v.nodes.map((n) => n.target.join(" "))}))))
  .catch((error) => done([{id: "axe-error", impact: "critical", help: String(error), nodes: []}]));
"""


def serious_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's WCAG checks of the current document: its serious and critical violations."""
    assert AXE.is_file(), f"{AXE} is missing: make install (npm ci --prefix tests/e2e/axe)"
    driver.execute_script(AXE.read_text())
    found: list[dict[str, Any]] = driver.execute_async_script(RUN_AXE)
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_accessibility_violations_in_the_form_its_errors_and_its_frames(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    browser.set_script_timeout(30)
    open_form(browser, local_stack)
    assert serious_violations(browser) == []

    # With every field refused and the alert shown
    submit(browser)
    alert_text(browser)
    assert browser.find_elements(By.CSS_SELECTOR, '[aria-invalid="true"]')
    assert serious_violations(browser) == []

    # The Payment Element's frame, and the 3-D Secure challenge in its dialog
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "#dn-payment iframe"))
    try:
        assert serious_violations(browser) == []
    finally:
        browser.switch_to.default_content()
    browser.get(f"{local_stack.api}/")
    open_form(browser, local_stack)
    fill_form(browser, card=THREE_D_SECURE)
    submit(browser)
    frame = challenge_frame(browser)
    assert serious_violations(browser) == []
    browser.switch_to.frame(frame)
    try:
        wait_until(browser, lambda d: enabled(d, "complete"), "the challenge's buttons")
        assert serious_violations(browser) == []
    finally:
        browser.switch_to.default_content()
    answer_challenge(browser, frame, "complete")
    thanked(browser)
    assert serious_violations(browser) == []


def test_on_a_375_px_phone_the_form_fits_and_a_gift_goes_through(browser: WebDriver, local_stack: RunningStack) -> None:
    set_viewport(browser, 740, 375, mobile=True)
    try:
        open_form(browser, local_stack)
        # Nothing wider than the screen: no sideways scrolling, every control inside 375 px
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 375
        for selector in ("#dn-amount", "#dn-name", "#dn-email", "#dn-payment iframe", "#dn-submit", ".dn-chip"):
            for element in browser.find_elements(By.CSS_SELECTOR, selector):
                box = element.rect
                assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (selector, box)
        # Touch targets of at least 44 px (WCAG 2.5.5)
        assert browser.find_element(By.ID, "dn-submit").rect["height"] >= 44
        fill_form(browser, card=VISA)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "donation-form-phone.png"))
        submit(browser)
        thanked(browser)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 375
    finally:
        set_viewport(browser, VIEWPORT[1])


def test_console_lists_the_alarms_with_their_state(browser: WebDriver, local_stack: RunningStack) -> None:
    browser.get(f"{local_stack.api}/console")

    def alarm_table(driver: WebDriver) -> list[tuple[str | None, str | None, str | None]]:
        # Read in one poll: the console redraws the table when a reason changes (every tick at most)
        return [
            (
                row.get_attribute("data-alarm"),
                row.get_attribute("data-state"),
                row.find_element(By.CSS_SELECTOR, ".pill").get_attribute("data-state"),
            )
            for row in driver.find_elements(By.CSS_SELECTOR, "#alarms tbody tr[data-state]")
        ]

    rows = wait_until(browser, alarm_table, "the alarm table")
    states = {name: state for name, state, _ in rows}
    assert all(name and name.startswith(f"{local_stack.stack_name}-") for name in states), states
    assert set(states.values()) <= {"OK", "ALARM", "INSUFFICIENT_DATA"}, states
    assert all(pill == state for _, state, pill in rows), rows
    queues = browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr[data-queue]")
    assert queues, "the queue table is empty"
    assert browser.find_element(By.ID, "notifications").is_displayed()
    screenshot(browser, "console")


def test_console_lists_the_pledges_and_those_due_on_a_day(browser: WebDriver, local_stack: RunningStack) -> None:
    # Given the console (other tests may have made pledges on the shared stack)
    browser.get(f"{local_stack.api}/console")
    wait_until(
        browser, lambda d: "needing attention or lapsed" in d.find_element(By.ID, "pledges-summary").text, "pledges"
    )

    # When the operator asks for the pledges due on a day nobody's pledge is due
    browser.find_element(By.ID, "pledges-due").send_keys("2099-01-01")
    browser.find_element(By.ID, "pledges-go").click()

    # Then the panel says so, in the table and its summary
    summary = wait_until(
        browser, lambda d: (s := d.find_element(By.ID, "pledges-summary")).text.endswith("2099-01-01") and s, "the day"
    )
    assert summary.text == "0 pledge(s) due on 2099-01-01"
    assert browser.find_element(By.CSS_SELECTOR, "#pledges tbody td.empty").text == "No pledge due on 2099-01-01."


# -- the operator console ----------------------------------------------------------------


def _donate(stack: RunningStack, key: str, **changes: object) -> str:
    body = {"amount": 2500, "currency": "usd", "email": "ada@example.org", "name": "Ada Lovelace",
            "payment_method": "pm_card_visa", "save_card": False, **changes}  # fmt: skip
    answer = requests.post(f"{stack.api}/donations", json=body, headers={"Idempotency-Key": a_key(key)}, timeout=15)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["donation_id"])


def _attention_row(driver: WebDriver, donation_id: str, state: str) -> Any:
    rows = driver.find_elements(By.CSS_SELECTOR, f'#attention tbody tr[data-donation="{donation_id}"]')
    return rows[0] if rows and rows[0].get_attribute("data-state") == state else False


def test_console_shows_an_outage_paged_with_its_step_count_and_runbook(browser: WebDriver, local_stack: RunningStack):
    sendgrid = SendGridControl(local_stack.sendgrid)
    sendgrid.add_fault("http_error", status=503)
    try:
        donation_id = _donate(local_stack, "browser-outage")
        browser.get(f"{local_stack.api}/console")
        # The step alarm fires, with what it means, the first command and a runbook link
        # (Each wait reads what it needs at once: the console redraws its tables on every poll.)
        alarm_text, runbook_href = wait_until(
            browser,
            lambda d: (
                (r := d.find_elements(By.CSS_SELECTOR, 'tr[data-alarm$="-receipt-step-failing"][data-state="ALARM"]'))
                and (r[0].text, r[0].find_element(By.CSS_SELECTOR, "a.runbook-link").get_attribute("href"))
            ),
            "the receipt step alarm",
            timeout=60,
        )
        assert "Receipts keep failing" in alarm_text and "dlq list receipt" in alarm_text
        assert runbook_href.endswith("/_local/runbook#receipt-step-failing")
        # The page the operators got names the step and the count; the donation shows as retrying
        page_text = wait_until(
            browser,
            lambda d: (
                (f := d.find_elements(By.CSS_SELECTOR, '#notifications li[data-alarm$="-receipt-step-failing"]'))
                and f[0].text
            ),
            "the page in the feed",
        )
        assert "receipt-step-failing" in page_text and "retrying" in page_text and "runbook" in page_text
        wait_until(browser, lambda d: _attention_row(d, donation_id, "retrying"), "the retrying donation")
        screenshot(browser, "console-outage")
        # The runbook section the page links to
        browser.get(runbook_href)
        assert (
            "Receipts are failing and being retried"
            in browser.find_element(By.ID, "receipt-step-failing").find_element(By.XPATH, "following-sibling::p").text
        )
        screenshot(browser, "runbook")
    finally:
        sendgrid.clear_faults()


def _wait_step_alarm_clears(browser: WebDriver, local_stack: RunningStack, suffix: str) -> None:
    def state(_: WebDriver) -> bool:
        alarms = requests.get(f"{local_stack.api}/_local/status", timeout=10).json()["alarms"]
        return all(a["state"] != "ALARM" for a in alarms if a["name"].endswith(suffix))

    wait_until(browser, state, f"{suffix} to leave ALARM", timeout=120)


def test_console_refuses_to_redrive_a_poison_message_and_fixes_the_address(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    SendGridControl(local_stack.sendgrid).reject_recipient("poison.example")
    donation_id = _donate(local_stack, "browser-poison", email="lin@poison.example")
    browser.get(f"{local_stack.api}/console")

    def open_parked_row(driver: WebDriver) -> tuple[str, str] | bool:
        # Read and click in one poll: the console redraws the table every 2 s
        row = _attention_row(driver, donation_id, "parked")
        if not row:
            return False
        kind, text = row.get_attribute("data-kind"), row.text
        row.find_element(By.CSS_SELECTOR, "button.show-detail").click()
        return kind, text

    kind, text = wait_until(browser, open_parked_row, "the parked donation", timeout=60)
    assert kind == "permanent" and "http_400" in text
    wait_until(browser, lambda d: d.find_element(By.ID, "detail-donation").text == donation_id, "the parked message")
    assert "fix-email" in browser.find_element(By.ID, "detail-hint").text
    browser.find_element(By.ID, "action-note").send_keys("T-42 typo in address")
    # The stack is shared: an earlier test's outage may still hold receipt-step-failing in ALARM, and a
    # redrive is refused for that first. This test is about the poison message's own refusal.
    _wait_step_alarm_clears(browser, local_stack, "receipt-step-failing")
    browser.find_element(By.ID, "do-redrive").click()
    outcome = wait_until(browser, lambda d: (r := d.find_element(By.ID, "action-result")).text and r, "the refusal")
    assert "Refused" in outcome.text and "would fail again" in outcome.text
    screenshot(browser, "console-poison-refused")

    browser.find_element(By.ID, "action-email").send_keys("lin@example.org")
    browser.find_element(By.ID, "do-fix-email").click()
    wait_until(browser, lambda d: "Address corrected" in d.find_element(By.ID, "action-result").text, "the fix")
    wait_until(
        browser,
        lambda d: requests.get(f"{local_stack.api}/donations/{donation_id}", timeout=5).json()["receipt_sent"],
        "the receipt to the corrected address",
    )
    wait_until(browser, lambda d: not _attention_row(d, donation_id, "parked"), "the donation to leave the list")
    assert "fix_email" in browser.find_element(By.ID, "detail-log").text

    # Donor lookup: from the corrected address to the donation's story
    browser.find_element(By.ID, "lookup-email").send_keys("LIN@example.org")
    browser.find_element(By.ID, "lookup-go").click()
    found = wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#lookup-results tr[data-donation="{donation_id}"]'),
        "the lookup",
    )[0]
    found.click()
    story = wait_until(browser, lambda d: (s := d.find_element(By.ID, "story")).is_displayed() and s, "the story")
    assert "201" in story.text and "done" in story.text and "T-42 typo in address" in story.text
    screenshot(browser, "console-poison-fixed")


def test_report_page_answers_the_receipts_question(browser: WebDriver, local_stack: RunningStack) -> None:
    # Given today's donations include one whose receipt was sent and one SendGrid refuses
    SendGridControl(local_stack.sendgrid).reject_recipient("report-poison.example")
    sent = _donate(local_stack, "browser-report-sent")
    refused = _donate(local_stack, "browser-report-refused", email="kim@report-poison.example")
    api = f"{local_stack.api}/donations"
    wait_until(browser, lambda d: requests.get(f"{api}/{sent}", timeout=5).json()["receipt_sent"], "the receipt")
    wait_until(browser, lambda d: requests.get(f"{api}/{refused}", timeout=5).json()["failed_step"], "the refusal")

    browser.get(f"{local_stack.api}/report")
    answer = wait_until(
        browser,
        lambda d: (a := d.find_element(By.ID, "report-answer")).text.startswith("Receipts:") and a,
        "the answer",
    )

    # Then the page says in one line that not every donor got a receipt, and names the one missing, and why
    assert answer.text.startswith("Receipts: No:") and int(answer.get_attribute("data-missing")) >= 1
    missing = {
        row.get_attribute("data-donation"): row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#report-missing tbody tr[data-donation]")
    }
    assert refused in missing and "set aside for an operator" in missing[refused] and sent not in missing
    totals = browser.find_element(By.ID, "report-totals").text
    assert "Renewals" in totals and "Recurring income" in totals and " active, " in totals, totals
    csv_text = requests.get(browser.find_element(By.ID, "report-csv").get_attribute("href"), timeout=10).text
    assert csv_text.startswith("donation_id,created_at,outcome") and sent in csv_text and refused in csv_text
    screenshot(browser, "report")

    # Leave the shared stack's receipt DLQ as found (other tests watch its alarm clear): discard, with a note
    discarded = requests.post(
        f"{local_stack.api}/_local/ops/discard",
        json={"queue": "receipt", "donation": refused, "note": "browser test: refused on purpose"},
        headers={"X-Donations-Console": "1", "Origin": local_stack.api},
        timeout=30,
    )
    assert discarded.status_code == 200 and discarded.json()["removed_messages"] == 1, discarded.text


# -- the pledge manage page (static/form/manage.html) ----------------------------------------------


def _renew_now(stack: RunningStack, pledge_id: str, period: str) -> None:
    """The renewal message the schedule sends on the due day, sent now (the local stack runs no renewal schedule)."""
    sqs = boto3.client(
        "sqs", endpoint_url=stack.moto, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )  # fmt: skip
    queue = sqs.get_queue_url(QueueName=f"{stack.stack_name}-renewal")["QueueUrl"]
    sqs.send_message(
        QueueUrl=queue, MessageBody=json.dumps({"type": "renew", "pledge_id": pledge_id, "period": period})
    )


def test_a_monthly_donor_authenticates_a_renewal_updates_the_card_changes_the_gift_and_cancels_on_the_manage_page(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    # Given a donor who ticks "Give this every month" on the form (the page says the card will be saved) and
    # gives with a card whose bank wants every payment authenticated (3-D Secure in the page)
    open_form(browser, local_stack)
    email = fill_form(browser, card=THREE_D_SECURE)
    browser.find_element(By.ID, "dn-monthly").click()
    hint = wait_until(browser, lambda d: visible(d, "dn-monthly-hint"), "the note that the card will be saved")
    assert "card will be saved" in hint.text
    save = browser.find_element(By.ID, "dn-save")
    assert save.is_selected() and not save.is_enabled()
    submit(browser)
    answer_challenge(browser, challenge_frame(browser), "complete")
    thanked(browser)
    donation_id = browser.find_element(By.ID, "donation-form").get_attribute("data-donation-id") or ""
    wait_until(
        browser,
        lambda d: requests.get(f"{local_stack.api}/donations/{donation_id}", timeout=5).json()["card_saved"],
        "the card to be saved (and the pledge made)",
    )
    sendgrid = SendGridControl(local_stack.sendgrid)

    def pledge_mail(subject: str) -> list[dict[str, Any]]:
        return [m for m in sendgrid.outbox() if email in m["to"] and m["subject"] == subject]

    # When its first renewal runs off-session: the bank wants the donor, who is emailed a link
    pledge_id = "pl_" + hashlib.sha256(f"pledge:{donation_id}".encode()).hexdigest()[:24]
    next_month = (date.today().replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
    _renew_now(local_stack, pledge_id, next_month)
    [asked] = wait_until(browser, lambda d: pledge_mail("Please confirm your monthly gift"), "the email")
    [link] = re.findall(r"http\S+#token=\S+", asked["content"][0]["value"])

    # Then the link's page confirms that payment with the bank's challenge, and thanks them
    browser.get(link)
    wait_until(browser, lambda d: enabled(d, "pg-authenticate"), "the confirm button").click()
    screenshot(browser, "pledge-authenticate")
    answer_challenge(browser, challenge_frame(browser), "complete")
    paid = wait_until(browser, lambda d: visible(d, "pg-paid"), "the thank-you").text
    assert "$25.00 is confirmed" in paid

    # When they open the manage page without a link and ask for one by email
    browser.get(f"{local_stack.api}/manage")
    wait_until(browser, lambda d: visible(d, "pg-email"), "the 'email me a link' form").send_keys(email)
    browser.find_element(By.ID, "pg-send-link").click()
    said = wait_until(browser, lambda d: d.find_element(By.ID, "pg-link-status").text.strip(), "the answer")
    assert "on its way" in said

    # Then one email brings the link; it opens the pledge: amount, next gift (the month after), card
    [mail] = wait_until(browser, lambda d: pledge_mail("Your monthly gift to Example Charity"), "the link email")
    [link] = re.findall(r"http\S+#token=\S+", mail["content"][0]["value"])
    browser.get(link)
    pledge = wait_until(browser, lambda d: visible(d, "pg-pledge"), "the pledge").text
    assert "$25.00 a month" in pledge and "ending 3184" in pledge and "Active" in pledge
    screenshot(browser, "pledge-manage")

    # When they give it a new card there, one their bank checks once when it is saved (3-D Secure in the page)
    browser.find_element(By.ID, "pg-update-card").click()
    type_card(browser, AUTHENTICATE_ON_SETUP, within="#pg-card-element")
    wait_until(browser, lambda d: enabled(d, "pg-card-save"), "the card form").click()
    answer_challenge(browser, challenge_frame(browser), "complete")

    # Then the page says the next gift goes on the new card
    wait_until(
        browser,
        lambda d: "new card is saved" in d.execute_script("return document.getElementById('pg-status').textContent"),
        "the page to say the card is saved",
    )
    assert "ending 3155" in browser.find_element(By.ID, "pg-pledge").text
    screenshot(browser, "pledge-card-updated")

    # And when the schedule's clock reaches the next gift's day, that renewal is charged on the new card,
    # off-session, without asking the donor again
    due = _pledge_now(local_stack, pledge_id).next_charge_on
    assert _run_schedule(local_stack, f"{due}T06:00:00Z")["renewals_scheduled"] >= 1
    donations = _tables(local_stack)["DonationsTable"]
    renewal_id = renewal_donation_id(pledge_id, due[:7])

    def charged() -> dict[str, Any] | None:
        item = donations.get_item(Key={"donation_id": renewal_id}, ConsistentRead=True).get("Item")
        return item if item and item.get("status") == "succeeded" else None

    assert wait_for(charged, timeout=60, what="the renewal on the new card")["card_last4"] == "3155"
    wait_for(lambda: _pledge_now(local_stack, pledge_id).next_charge_on > due, timeout=30, what="the pledge moved on")

    def page_says(text: str) -> None:
        # Read by script: the page replaces the element when the answer comes.
        wait_until(
            browser,
            lambda d: text in d.execute_script("return document.getElementById('pg-status').textContent"),
            f"the page to say {text!r}",
        )

    # When they change the amount to 40.00, skip the next month, pause and resume (each one click)
    browser.refresh()
    amount = wait_until(browser, lambda d: visible(d, "pg-amount"), "the amount field")
    amount.clear()
    amount.send_keys("40")
    browser.find_element(By.ID, "pg-amount-save").click()
    page_says("new amount is saved")
    assert "$40.00 a month" in browser.find_element(By.ID, "pg-pledge").text
    before_skip = _pledge_now(local_stack, pledge_id).next_charge_on
    wait_until(browser, lambda d: enabled(d, "pg-skip"), "the skip button").click()
    page_says("next month is skipped")
    skipped = _pledge_now(local_stack, pledge_id)
    assert (skipped.amount, skipped.next_charge_on[:7]) == (4000, renewal_period_after(before_skip))
    wait_until(browser, lambda d: enabled(d, "pg-pause"), "the pause button").click()
    page_says("is paused")
    assert "Paused" in browser.find_element(By.ID, "pg-pledge").text
    assert _pledge_now(local_stack, pledge_id).due_on is None
    wait_until(browser, lambda d: enabled(d, "pg-resume"), "the resume button").click()
    page_says("is resumed")
    assert "Active" in browser.find_element(By.ID, "pg-pledge").text
    screenshot(browser, "pledge-changed")

    # When they cancel: one click
    wait_until(browser, lambda d: enabled(d, "pg-cancel"), "the cancel button").click()

    # Then the page says it is canceled, and so does the API when the link is opened again
    page_says("is canceled")
    browser.refresh()
    pledge = wait_until(browser, lambda d: visible(d, "pg-pledge"), "the pledge again").text
    assert "Canceled: you will not be charged again" in pledge
    assert not visible(browser, "pg-cancel")
    screenshot(browser, "pledge-canceled")

    # And one email confirms it
    wait_until(browser, lambda d: pledge_mail("Your monthly gift is canceled"), "the cancellation email")
    assert len(pledge_mail("Your monthly gift is canceled")) == 1


def renewal_period_after(day: str) -> str:
    """The period (``YYYY-MM``) after the one ``day`` is in."""
    return (date.fromisoformat(day).replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
