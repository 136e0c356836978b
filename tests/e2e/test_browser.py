"""The sample pages in a real browser: headless Chromium driven by Selenium against the local stack.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``)
and ``selenium`` from PyPI. Nothing is downloaded at run time: the driver and browser paths are given,
so Selenium Manager never runs. A missing browser fails these tests (it does not skip them).
Screenshots go to ``artifacts/browser/`` under the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator.emulators.sendgrid_emulator import SendGridControl
from simulator.local.process import ROOT, RunningStack
from tests.e2e.conftest import run_ops
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
    from selenium.common.exceptions import TimeoutException, WebDriverException
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
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; page state: {page_state(driver)}"
        ) from None


def page_state(driver: WebDriver) -> dict[str, str | None]:
    state: dict[str, str | None] = {"url": driver.current_url}
    for element_id in ("error", "status", "stripe-status", "step-charged", "step-card", "step-receipt"):
        found = driver.find_elements(By.ID, element_id)
        if found:
            state[element_id] = f"{found[0].get_attribute('data-state') or ''} {found[0].text!r}".strip()
    return state


def step_state(driver: WebDriver, step: str) -> str | None:
    return driver.find_element(By.ID, f"step-{step}").get_attribute("data-state")


def set_viewport(driver: WebDriver, height: int) -> None:
    """A 1280-wide viewport of the given height (the window's toolbar would otherwise take some of it)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": VIEWPORT[0], "height": height, "deviceScaleFactor": 1, "mobile": False},
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


def open_form(driver: WebDriver, stack: RunningStack) -> None:
    driver.get(f"{stack.api}/")
    wait_until(
        driver,
        lambda d: d.find_element(By.ID, "donation-form").get_attribute("data-ready") == "true",
        "the form to load its test payment methods",
    )


def fill_form(
    driver: WebDriver,
    *,
    payment_method: str,
    save_card: bool,
    amount: str = "25.00",
    currency: str = "usd",
    campaign: str = "",
) -> str:
    email = f"ada+{uuid.uuid4().hex[:10]}@example.org"
    amount_input = driver.find_element(By.ID, "amount")
    amount_input.clear()
    amount_input.send_keys(amount)
    Select(driver.find_element(By.ID, "currency")).select_by_value(currency)
    driver.find_element(By.ID, "name").send_keys("Ada Lovelace")
    driver.find_element(By.ID, "email").send_keys(email)
    if campaign:
        driver.find_element(By.ID, "campaign").send_keys(campaign)
    Select(driver.find_element(By.ID, "payment-method")).select_by_value(payment_method)
    checkbox = driver.find_element(By.ID, "save-card")
    if checkbox.is_selected() != save_card:
        checkbox.click()
    return email


def submit(driver: WebDriver) -> None:
    button = driver.find_element(By.ID, "donate")
    assert button.is_enabled(), "the Donate button is disabled"
    button.click()


def visible(driver: WebDriver, element_id: str) -> WebElement | bool:
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else False


# -- tests -----------------------------------------------------------------------------------------


def test_donation_saves_the_card_and_its_receipt_reaches_the_outbox(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    open_form(browser, local_stack)
    email = fill_form(browser, payment_method="pm_card_visa", save_card=True, campaign="browser-test")
    submit(browser)

    wait_until(
        browser,
        lambda d: step_state(d, "receipt") == "done" and step_state(d, "card") == "done",
        "the card to be saved and the receipt sent",
    )
    assert step_state(browser, "charged") == "done"
    donation_id = browser.find_element(By.ID, "donation-id").text.strip()
    assert re.fullmatch(r"don_[a-z2-7]{26}", donation_id), donation_id
    assert browser.find_element(By.ID, "error").text == ""
    assert "complete" in browser.find_element(By.ID, "status").text.lower()
    form_png = screenshot(browser, "donation-form")

    browser.get(f"{local_stack.api}/outbox?donation={donation_id}")
    row = wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#outbox tbody tr[data-donation-id="{donation_id}"]'),
        f"the receipt of {donation_id} in the outbox",
    )[0]
    assert email in row.text
    assert "Ada Lovelace" in row.text
    outbox_png = screenshot(browser, "outbox")

    # The receipt as the donor reads it: the installed template, rendered by the SendGrid emulator.
    row.find_element(By.LINK_TEXT, "View receipt").click()
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

    for png in (form_png, outbox_png, receipt_png, receipt_phone_png):
        assert png.is_file() and png.stat().st_size > 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"


def test_under_attack_the_form_shows_the_captcha_and_the_donation_goes_through_once_solved(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    # Given the attack mode held on by an operator (donations-ops card-testing on)
    forced = run_ops(local_stack, "card-testing", "on", "--minutes", "5", "--by", "browser-test")
    assert forced.returncode == 0, forced.stderr
    try:
        open_form(browser, local_stack)
        assert not visible(browser, "challenge")  # the widget is shown only when the API asks for it
        fill_form(browser, payment_method="pm_card_visa", save_card=False)
        submit(browser)

        # Then the API's 403 puts the widget on the page (the Turnstile emulator's stand-in), not a failure
        box = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".turnstile-local input"), "the CAPTCHA")
        assert visible(browser, "challenge")
        assert browser.find_element(By.ID, "donation-form").get_attribute("data-last-status") == "403"
        screenshot(browser, "challenge")

        # When the donor solves it, the same donation is sent again with the token, and charged
        box[0].click()
        wait_until(browser, lambda d: step_state(d, "charged") == "done", "the donation to be charged")
        assert not visible(browser, "challenge")
    finally:
        released = run_ops(local_stack, "card-testing", "auto", "--close")
        assert released.returncode == 0, released.stderr


def test_declined_card_shows_the_decline_and_no_progress(browser: WebDriver, local_stack: RunningStack) -> None:
    open_form(browser, local_stack)
    fill_form(browser, payment_method="pm_card_chargeDeclinedInsufficientFunds", save_card=True)
    submit(browser)

    error = browser.find_element(By.ID, "error")
    wait_until(browser, lambda d: error.is_displayed() and error.text.strip(), "the decline message")
    assert "insufficient funds" in error.text.lower(), error.text
    assert browser.find_element(By.ID, "donate").is_enabled(), "the donor should be able to try another card"
    assert not browser.find_element(By.ID, "result").is_displayed()
    states = {step: step_state(browser, step) for step in ("charged", "card", "receipt")}
    assert "done" not in states.values(), states
    screenshot(browser, "declined")


def test_three_d_secure_completion_shows_the_payment_succeeded(browser: WebDriver, local_stack: RunningStack) -> None:
    open_form(browser, local_stack)
    fill_form(browser, payment_method="pm_card_authenticationRequired", save_card=False)
    submit(browser)

    complete = wait_until(browser, lambda d: visible(d, "auth-complete"), "the 3-D Secure buttons")
    assert visible(browser, "auth-fail")
    assert "Authenticate your card (3-D Secure)" in browser.find_element(By.ID, "three-ds").text
    assert browser.find_element(By.ID, "stripe-status").get_attribute("data-status") == "requires_action"
    assert re.fullmatch(r"don_[a-z2-7]{26}", browser.find_element(By.ID, "donation-id").text.strip())
    screenshot(browser, "three-d-secure")
    complete.click()

    # The authenticate call answered with the PaymentIntent, now succeeded according to Stripe.
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "stripe-status").get_attribute("data-status") == "succeeded",
        "Stripe's status after authentication",
    )
    assert not visible(browser, "three-ds"), "the authenticate buttons should be gone"
    assert browser.find_element(By.ID, "error").text == ""
    assert "succeeded" in browser.find_element(By.ID, "stripe-status").text
    assert "succeeded" in browser.find_element(By.ID, "status").text.lower()
    assert step_state(browser, "card") == "skipped"
    # Stripe's payment_intent.succeeded webhook completes the donation: charged, then the receipt.
    wait_until(
        browser,
        lambda d: step_state(d, "charged") == "done" and step_state(d, "receipt") == "done",
        "the webhook to complete the donation and its receipt to be sent",
    )
    donation_id = browser.find_element(By.ID, "donation-id").text.strip()
    outbox = requests.get(f"{local_stack.api}/_local/outbox", timeout=10).json()["emails"]
    assert [m["custom_args"]["donation_id"] for m in outbox].count(donation_id) == 1
    screenshot(browser, "three-d-secure-completed")


RECORD_IDEMPOTENCY_KEYS = """
window.__idempotencyKeys = [];
const originalFetch = window.fetch;
window.fetch = (url, options) => {
  const headers = (options && options.headers) || {};
  if (headers["Idempotency-Key"]) window.__idempotencyKeys.push(headers["Idempotency-Key"]);
  return originalFetch(url, options);
};
"""


def test_retry_after_503_reuses_the_idempotency_key_and_a_new_donation_gets_a_new_one(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    open_form(browser, local_stack)
    browser.execute_script(RECORD_IDEMPOTENCY_KEYS)
    fill_form(browser, payment_method="pm_card_visa", save_card=False)
    # Stripe answers 500 to every charge until the fault is removed: the API answers 503 + Retry-After.
    fault = requests.post(
        f"{local_stack.stripe}/_emulator/faults",
        json={"kind": "http_error", "status": 500, "path_prefix": "/v1/payment_intents", "method": "POST"},
        timeout=5,
    ).json()["id"]
    try:
        submit(browser)
        retry = wait_until(browser, lambda d: visible(d, "retry"), "the Try again button after a 503")
        assert not retry.is_enabled(), "Try again should wait for Retry-After"
        assert "try again" in browser.find_element(By.ID, "error").text.lower()
        screenshot(browser, "service-unavailable")
    finally:
        requests.delete(f"{local_stack.stripe}/_emulator/faults/{fault}", timeout=5)

    wait_until(browser, lambda d: retry.is_enabled(), "Retry-After to pass", timeout=15)
    retry.click()
    wait_until(browser, lambda d: step_state(d, "charged") == "done", "the retried charge")
    first_id = browser.find_element(By.ID, "donation-id").text.strip()
    keys = browser.execute_script("return window.__idempotencyKeys")
    assert len(keys) == 2 and keys[0] == keys[1], keys

    wait_until(browser, lambda d: visible(d, "new-donation"), "the donation to finish").click()
    submit(browser)
    wait_until(browser, lambda d: step_state(d, "charged") == "done", "the second donation's charge")
    keys = browser.execute_script("return window.__idempotencyKeys")
    assert len(keys) == 3 and keys[2] != keys[0], keys
    assert browser.find_element(By.ID, "donation-id").text.strip() != first_id


def test_console_lists_the_alarms_with_their_state(browser: WebDriver, local_stack: RunningStack) -> None:
    browser.get(f"{local_stack.api}/console")
    rows = wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#alarms tbody tr[data-state]"),
        "the alarm table",
    )
    states = {row.get_attribute("data-alarm"): row.get_attribute("data-state") for row in rows}
    assert all(name and name.startswith(f"{local_stack.stack_name}-") for name in states), states
    assert set(states.values()) <= {"OK", "ALARM", "INSUFFICIENT_DATA"}, states
    for row in rows:
        pill = row.find_element(By.CSS_SELECTOR, ".pill")
        assert pill.get_attribute("data-state") == row.get_attribute("data-state")
    queues = browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr[data-queue]")
    assert queues, "the queue table is empty"
    assert browser.find_element(By.ID, "notifications").is_displayed()
    screenshot(browser, "console")


# -- the operator console (issue #15) ----------------------------------------------------------------


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
        row = wait_until(
            browser,
            lambda d: (
                (r := d.find_elements(By.CSS_SELECTOR, 'tr[data-alarm$="-receipt-step-failing"][data-state="ALARM"]'))
                and r[0]
            ),
            "the receipt step alarm",
            timeout=60,
        )
        assert "Receipts keep failing" in row.text and "dlq list receipt" in row.text
        link = row.find_element(By.CSS_SELECTOR, "a.runbook-link")
        assert link.get_attribute("href").endswith("/_local/runbook#receipt-step-failing")
        # The page the operators got names the step and the count; the donation shows as retrying
        page = wait_until(
            browser,
            lambda d: (
                (f := d.find_elements(By.CSS_SELECTOR, '#notifications li[data-alarm$="-receipt-step-failing"]'))
                and f[0]
            ),
            "the page in the feed",
        )
        assert "receipt-step-failing" in page.text and "retrying" in page.text and "runbook" in page.text
        wait_until(browser, lambda d: _attention_row(d, donation_id, "retrying"), "the retrying donation")
        screenshot(browser, "console-outage")
        # The runbook section the page links to
        browser.get(link.get_attribute("href"))
        assert (
            "Receipts are failing and being retried"
            in browser.find_element(By.ID, "receipt-step-failing").find_element(By.XPATH, "following-sibling::p").text
        )
        screenshot(browser, "runbook")
    finally:
        sendgrid.clear_faults()


def test_console_refuses_to_redrive_a_poison_message_and_fixes_the_address(
    browser: WebDriver, local_stack: RunningStack
) -> None:
    SendGridControl(local_stack.sendgrid).reject_recipient("poison.example")
    donation_id = _donate(local_stack, "browser-poison", email="lin@poison.example")
    browser.get(f"{local_stack.api}/console")

    row = wait_until(browser, lambda d: _attention_row(d, donation_id, "parked"), "the parked donation", timeout=60)
    assert row.get_attribute("data-kind") == "permanent" and "http_400" in row.text
    row.find_element(By.CSS_SELECTOR, "button.show-detail").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "detail-donation").text == donation_id, "the parked message")
    assert "fix-email" in browser.find_element(By.ID, "detail-hint").text
    browser.find_element(By.ID, "action-note").send_keys("T-42 typo in address")
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
