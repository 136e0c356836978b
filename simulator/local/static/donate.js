/* The donation form: POST /donations with an Idempotency-Key, then follow the donation's progress. */
"use strict";

(() => {
  const { h, getJSON, formatMoney, CURRENCY_SYMBOLS } = App;

  const POLL_INTERVAL_MS = 700;
  const POLL_LIMIT_MS = 3 * 60 * 1000;
  const RETRYABLE = new Set([409, 429, 500, 502, 503, 504]);
  const FINAL_FAILURES = new Set(["declined", "failed", "canceled"]);
  // The API names fields as in its JSON body; the page names inputs by id.
  const FIELD_INPUTS = {
    amount: "amount",
    currency: "currency",
    name: "name",
    email: "email",
    payment_method: "payment-method",
    save_card: "save-card",
    metadata: "campaign",
    "metadata.campaign": "campaign",
  };

  const $ = (id) => document.getElementById(id);
  const form = $("donation-form");
  const donateButton = $("donate");
  const errorBox = $("error");

  /** The submission attempt: one Idempotency-Key, reused only to retry the very same body. */
  let attempt = null; // {key, bodyText, body, open}
  let poll = null; // {donationId, timer, deadline}
  let current = null; // {donationId, body, stripeStatus, paymentIntentId, authFailed}
  let retryTimer = null;

  // -- set-up -------------------------------------------------------------------------------------

  function newIdempotencyKey() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // crypto.randomUUID needs a secure context; getRandomValues does not (e.g. a LAN address over http).
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  async function loadConfig() {
    let config = null;
    try {
      config = await getJSON("/_local/config");
    } catch (error) {
      console.warn("no local config; assuming real Stripe", error);
    }
    if (config && config.stripe_emulator && Array.isArray(config.test_payment_methods)) {
      const select = $("payment-method");
      select.replaceChildren(
        ...config.test_payment_methods.map((pm) => h("option", { value: pm.id }, `${pm.label} (${pm.id})`))
      );
      select.disabled = false;
    } else {
      useRealStripeField();
    }
    donateButton.disabled = false;
    form.dataset.ready = "true";
  }

  /** Against the real Stripe (test mode) the card comes from Stripe.js; accept a pm_ id it produced. */
  function useRealStripeField() {
    const select = $("payment-method");
    const input = h("input", {
      type: "text",
      id: "payment-method",
      name: "payment_method",
      placeholder: "pm_…",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": "pm-hint",
    });
    select.replaceWith(input);
    $("pm-field").querySelector("label").textContent = "Payment method id";
    const hint = $("pm-hint");
    hint.className = "note warn";
    hint.replaceChildren(
      h("strong", {}, "Real Stripe (test mode): "),
      "card entry needs Stripe.js with a test publishable key, which this sample page does not load. ",
      "Paste a PaymentMethod id (pm_…) created with Stripe.js or the Stripe CLI."
    );
  }

  function syncCurrencySymbol() {
    $("currency-symbol").textContent = CURRENCY_SYMBOLS[$("currency").value] || "";
    const input = $("amount");
    input.style.paddingLeft = `${18 + 9 * $("currency-symbol").textContent.length}px`;
  }

  // -- reading the form ---------------------------------------------------------------------------

  /** "25", "25.5", "25.00", "1,000.00" -> minor units; null when it is not an amount. */
  function toMinorUnits(text) {
    const cleaned = text.trim().replace(/[,\s]/g, "");
    const match = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(cleaned);
    if (!match) return null;
    return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
  }

  function readForm() {
    const errors = {};
    const amount = toMinorUnits($("amount").value);
    if (amount === null) errors.amount = "Enter an amount such as 25.00.";
    else if (amount === 0) errors.amount = "Enter an amount greater than zero.";
    const name = $("name").value.trim();
    if (!name) errors.name = "Enter your name.";
    const email = $("email").value.trim();
    if (!email) errors.email = "Enter your email address: your receipt goes there.";
    const paymentMethod = $("payment-method").value.trim();
    if (!paymentMethod) errors.payment_method = "Choose a payment method.";
    if (Object.keys(errors).length) {
      for (const [field, message] of Object.entries(errors)) showFieldError(field, message);
      showError("Please correct the highlighted fields.");
      focusFirstInvalid();
      return null;
    }
    const body = {
      amount,
      currency: $("currency").value,
      name,
      email,
      payment_method: paymentMethod,
      save_card: $("save-card").checked,
    };
    const campaign = $("campaign").value.trim();
    if (campaign) body.metadata = { campaign };
    return body;
  }

  // -- errors -------------------------------------------------------------------------------------

  function clearErrors() {
    clearTimeout(retryTimer);
    errorBox.replaceChildren();
    errorBox.className = "alert error";
    for (const el of form.querySelectorAll(".field-error")) el.remove();
    for (const el of form.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      const describedBy = (el.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
      if (describedBy.length) el.setAttribute("aria-describedby", describedBy.join(" "));
      else el.removeAttribute("aria-describedby");
    }
  }

  function showError(message, title) {
    errorBox.replaceChildren(...(title ? [h("span", { className: "alert-title" }, title)] : []), message);
  }

  function showFieldError(field, message) {
    const inputId = FIELD_INPUTS[field];
    const input = inputId && $(inputId);
    if (!input) return false;
    const errorId = `${inputId}-error`;
    const container = input.closest(".field");
    const note = h("p", { className: "field-error", id: errorId }, message);
    const after = container.querySelector(".hint, .note, .presets");
    if (after && input.type !== "checkbox") after.before(note);
    else container.append(note);
    input.setAttribute("aria-invalid", "true");
    const describedBy = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    input.setAttribute("aria-describedby", [errorId, ...describedBy].join(" "));
    return true;
  }

  function focusFirstInvalid() {
    const invalid = form.querySelector('[aria-invalid="true"]');
    if (invalid) invalid.focus();
  }

  /** Seconds to wait from a Retry-After header (seconds or an HTTP date), bounded to a minute. */
  function retryAfterSeconds(response, fallback) {
    const value = response && response.headers.get("Retry-After");
    if (!value) return fallback;
    const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
    return Number.isFinite(seconds) ? Math.min(60, Math.max(0, Math.ceil(seconds))) : fallback;
  }

  /** A retryable failure: the attempt (and its Idempotency-Key) stays open for "Try again". */
  function showRetry(message, waitSeconds) {
    const retry = h("button", { type: "button", className: "btn btn-secondary", id: "retry" }, "Try again");
    errorBox.replaceChildren(
      h("span", { className: "alert-title" }, "We couldn't complete your donation yet"),
      h("span", { id: "error-message" }, message),
      " Trying again continues this same donation, so you will never be charged twice.",
      h("div", { className: "btn-row" }, retry)
    );
    let remaining = waitSeconds;
    const countDown = () => {
      if (remaining > 0) {
        retry.disabled = true;
        retry.textContent = `Try again in ${remaining} s`;
        remaining -= 1;
        retryTimer = setTimeout(countDown, 1000);
      } else {
        retry.disabled = false;
        retry.textContent = "Try again";
      }
    };
    countDown();
    retry.addEventListener("click", () => {
      clearErrors();
      send();
    });
  }

  // -- submitting ---------------------------------------------------------------------------------

  function setBusy(busy) {
    for (const fieldset of form.querySelectorAll("fieldset")) fieldset.disabled = busy;
    donateButton.disabled = busy;
    donateButton.textContent = busy ? "Processing…" : "Donate";
    form.setAttribute("aria-busy", String(busy));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (donateButton.disabled) return;
    clearErrors();
    const body = readForm();
    if (!body) return;
    const bodyText = JSON.stringify(body);
    // The same unanswered attempt keeps its key; anything else is a new donation with a new key.
    if (!attempt || !attempt.open || attempt.bodyText !== bodyText) {
      attempt = { key: newIdempotencyKey(), bodyText, body, open: true };
    }
    send();
  });

  async function send() {
    const sent = attempt;
    setBusy(true);
    let response = null;
    let payload = null;
    try {
      const headers = { "Content-Type": "application/json", "Idempotency-Key": sent.key, Accept: "application/json" };
      if (sent.challengeToken) headers["Challenge-Token"] = sent.challengeToken;
      response = await fetch("/donations", { method: "POST", headers, body: sent.bodyText });
      payload = await response.json().catch(() => null);
    } catch (error) {
      console.warn(error);
    }
    const status = response ? response.status : 0;
    const error = (payload && payload.error) || {};
    form.dataset.lastStatus = String(status);

    if (status === 201 || status === 202) {
      sent.open = false;
      Challenge.hide();
      startResult(payload, sent.body, status);
      return;
    }
    setBusy(false);
    if (status === 403 && Challenge.asked(error)) {
      // Card testing: the API wants a CAPTCHA before this donation; solving it sends the same one again.
      Challenge.show(error, (token) => {
        sent.challengeToken = token;
        clearErrors();
        send();
      });
      return;
    }
    if (status === 0) {
      showRetry("We could not reach the server. Check your connection.", 0);
    } else if (RETRYABLE.has(status)) {
      const message = error.message || (payload && payload.message) || "The service is busy.";
      showRetry(message, retryAfterSeconds(response, status === 409 ? 1 : 2));
    } else if (status === 402) {
      sent.open = false;
      errorBox.className = "alert error decline";
      showError(error.message || "Your card was declined.", "Payment declined");
      errorBox.append(h("span", { className: "alert-sub" }, "Nothing was charged. Please try another card."));
      errorBox.scrollIntoView({ behavior: "smooth", block: "nearest" });
      $("payment-method").focus({ preventScroll: true });
    } else {
      sent.open = false;
      const message = error.message || (payload && payload.message) || `The request was refused (${status}).`;
      if (error.field && showFieldError(error.field, message)) {
        showError("Please correct the highlighted field.");
        focusFirstInvalid();
      } else {
        showError(message);
      }
    }
  }

  // -- the CAPTCHA the API asks for under attack (README, "Card testing") ----------------------------

  /** Cloudflare Turnstile's widget, loaded only when asked for; the API names its site key and script. */
  const Challenge = (() => {
    let loading = null;
    let widgetId = null;
    let onSolved = null; // the attempt the next token is for

    function asked(error) {
      return (error.code === "challenge_required" || error.code === "challenge_failed") && error.challenge;
    }

    function load(script) {
      if (!loading) {
        loading = new Promise((resolve, reject) => {
          const tag = document.createElement("script");
          tag.src = script;
          tag.async = true;
          tag.onload = () => resolve(window.turnstile);
          tag.onerror = () => reject(new Error("The security check could not be loaded."));
          document.head.append(tag);
        });
      }
      return loading;
    }

    async function show(error, solved) {
      onSolved = solved;
      const box = $("challenge");
      box.hidden = false;
      showError(error.message);
      try {
        const turnstile = await load(error.challenge.script);
        if (widgetId !== null) {
          turnstile.reset(widgetId); // a refused token: solve it again
          return;
        }
        widgetId = turnstile.render($("challenge-widget"), {
          sitekey: error.challenge.site_key,
          action: "donate",
          callback: (token) => onSolved && onSolved(token),
        });
      } catch (failure) {
        showError(failure.message);
      }
      box.scrollIntoView({ behavior: "smooth", block: "nearest" });
    }

    function hide() {
      $("challenge").hidden = true;
    }

    return { asked, show, hide };
  })();

  // -- following the donation ---------------------------------------------------------------------

  function startResult(answer, body, httpStatus) {
    current = {
      donationId: answer.donation_id,
      body,
      stripeStatus: answer.status,
      paymentIntentId: null,
      authFailed: false,
    };
    $("result").hidden = false;
    $("about").hidden = true;
    $("donation-id").textContent = answer.donation_id;
    $("result-amount").textContent = formatMoney(body.amount, body.currency);
    $("new-donation").hidden = true;
    $("outbox-link").hidden = true;
    $("auth-error") && $("auth-error").remove();
    setStripeStatus(answer.status);
    donateButton.textContent = "Donation submitted";
    if (httpStatus === 202 && answer.client_secret) {
      current.paymentIntentId = String(answer.client_secret).split("_secret_")[0];
      setStripeStatus(answer.status, current.paymentIntentId);
      $("three-ds").hidden = false;
      for (const button of $("three-ds").querySelectorAll("button")) button.disabled = false;
    } else {
      $("three-ds").hidden = true;
    }
    render({ status: answer.status, card_saved: body.save_card ? false : null, receipt_sent: false, failed_step: null });
    startPolling(answer.donation_id);
    $("result").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  function setStripeStatus(status, paymentIntentId) {
    const el = $("stripe-status");
    el.dataset.status = status || "";
    const tone = status === "succeeded" ? " ok" : FINAL_FAILURES.has(status) || status === "requires_payment_method" ? " bad" : "";
    el.replaceChildren(h("span", { className: `pill${tone}` }, status || "—"));
    if (paymentIntentId) el.append(h("span", { className: "cell-sub mono" }, paymentIntentId));
  }

  function startPolling(donationId) {
    stopPolling();
    poll = { donationId, timer: null, deadline: Date.now() + POLL_LIMIT_MS };
    pollOnce(poll);
  }

  function stopPolling() {
    if (poll) clearTimeout(poll.timer);
    poll = null;
  }

  async function pollOnce(mine) {
    if (poll !== mine) return;
    try {
      const donation = await getJSON(`/donations/${encodeURIComponent(mine.donationId)}`);
      if (poll !== mine) return;
      render(donation);
      if (isFinished(donation)) {
        finish();
        return;
      }
    } catch (error) {
      console.warn("poll failed; trying again", error);
    }
    if (poll !== mine) return;
    if (Date.now() > mine.deadline) {
      setStatus("This is taking longer than usual. Your donation is safe; your receipt will arrive by email.", "");
      finish();
      return;
    }
    mine.timer = setTimeout(() => pollOnce(mine), POLL_INTERVAL_MS);
  }

  function finish() {
    stopPolling();
    $("new-donation").hidden = false;
  }

  function cardState(donation) {
    if (!current.body.save_card) return "skipped";
    if (donation.card_saved === true) return "done";
    if (donation.failed_step === "tokenize") return "failed";
    return "pending";
  }

  function receiptState(donation) {
    if (donation.receipt_sent) return "done";
    if (donation.failed_step === "send_receipt") return "failed";
    return "pending";
  }

  function isFinished(donation) {
    if (FINAL_FAILURES.has(donation.status)) return true;
    if (donation.status !== "succeeded") return false;
    return cardState(donation) !== "pending" && receiptState(donation) !== "pending";
  }

  function setStep(id, state, detail, active) {
    const step = $(id);
    step.dataset.state = state;
    step.classList.toggle("active", Boolean(active));
    step.querySelector(".step-detail").textContent = detail;
    step.querySelector(".step-sr").textContent = `(${state})`;
  }

  function setStatus(text, tone) {
    const el = $("status");
    el.textContent = text;
    el.dataset.tone = tone || "";
  }

  function setPill(text, tone) {
    const pill = $("status-pill");
    pill.textContent = text;
    pill.className = `pill${tone ? ` ${tone}` : ""}`;
  }

  function render(donation) {
    const status = donation.status;
    const amount = formatMoney(current.body.amount, current.body.currency);
    const $status = $("status");
    $status.dataset.donationStatus = status;

    // Charged
    let charged;
    if (status === "succeeded") {
      charged = ["done", `${amount} charged`];
    } else if (FINAL_FAILURES.has(status)) {
      charged = ["failed", status === "declined" ? "The card was declined" : "The payment did not go through"];
    } else if (status === "requires_action") {
      if (current.authFailed) charged = ["failed", "Authentication failed: nothing was charged"];
      else if (current.stripeStatus === "succeeded")
        charged = ["pending", "Authenticated; Stripe confirmed the payment. Recording it…"];
      else charged = ["pending", "Waiting for you to authenticate the payment"];
    } else {
      charged = ["pending", "Contacting the payment provider…"];
    }
    const chargeOver = charged[0] !== "pending";
    setStep("step-charged", charged[0], charged[1], !chargeOver);

    // Card saved
    const card = cardState(donation);
    const cardText = {
      skipped: "Not requested",
      done: "Saved with Stripe for future donations",
      failed: "Could not be saved; your donation itself went through",
      pending: status === "succeeded" ? "Saving your card with Stripe…" : "Starts after the charge",
    };
    const stopped = charged[0] === "failed";
    setStep("step-card", stopped && card === "pending" ? "skipped" : card, stopped ? "Not needed" : cardText[card],
      card === "pending" && status === "succeeded");

    // Receipt sent
    const receipt = receiptState(donation);
    const receiptText = {
      done: `Emailed to ${current.body.email}`,
      failed: "Could not be sent; our team has been alerted",
      pending: status === "succeeded" ? "Sending your receipt…" : "Starts after the charge",
    };
    setStep("step-receipt", stopped && receipt === "pending" ? "skipped" : receipt,
      stopped ? "Not needed" : receiptText[receipt], receipt === "pending" && status === "succeeded");
    $("outbox-link").hidden = receipt !== "done";
    $("outbox-link").href = `/outbox?donation=${encodeURIComponent(current.donationId)}`;

    // Overall status
    if (status === "succeeded") {
      if (card === "failed" || receipt === "failed") {
        setPill("Succeeded", "ok");
        setStatus("Thank you! Your payment succeeded; a follow-up step failed and our team has been alerted.", "");
      } else if (isFinished(donation)) {
        setPill("Complete", "ok");
        setStatus(`Thank you, ${current.body.name}! Your donation of ${amount} is complete.`, "ok");
      } else {
        setPill("Succeeded", "ok");
        setStatus("Payment succeeded. Finishing up in the background…", "ok");
      }
      if (current.stripeStatus !== "succeeded") setStripeStatus("succeeded", current.paymentIntentId);
    } else if (FINAL_FAILURES.has(status)) {
      setPill(status === "declined" ? "Declined" : "Failed", "bad");
      setStatus(status === "declined" ? "The payment was declined. Nothing was charged." : "The payment did not go through.", "bad");
      $("three-ds").hidden = true;
    } else if (status === "requires_action") {
      if (current.authFailed) {
        setPill("Not charged", "bad");
        setStatus("Authentication failed, so the payment was not taken. You can try again or use another card.", "bad");
      } else if (current.stripeStatus === "succeeded") {
        setPill("Succeeded", "ok");
        setStatus("Payment succeeded: Stripe confirmed your authentication. Saving your donation…", "ok");
      } else {
        setPill("Action required", "");
        setStatus("Your bank needs you to authenticate this payment.", "");
      }
    } else {
      setPill("Processing", "");
      setStatus("Processing your donation…", "");
    }
  }

  // -- 3-D Secure (stands in for Stripe.js handleNextAction) ---------------------------------------

  async function authenticate(outcome) {
    const panel = $("three-ds");
    const buttons = panel.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    $("auth-error") && $("auth-error").remove();
    let response = null;
    let payload = null;
    try {
      response = await fetch(`/_local/payment_intents/${encodeURIComponent(current.paymentIntentId)}/authenticate`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ outcome }),
      });
      payload = await response.json().catch(() => null);
    } catch (error) {
      console.warn(error);
    }
    if (!response || !response.ok || !payload) {
      const message = (payload && payload.message) || "Authentication could not be completed; try again.";
      panel.append(h("p", { className: "field-error", id: "auth-error", role: "alert" }, message));
      for (const button of buttons) button.disabled = false;
      return;
    }
    panel.hidden = true;
    current.stripeStatus = payload.status;
    setStripeStatus(payload.status, payload.id);
    if (payload.status !== "succeeded") {
      current.authFailed = true;
      stopPolling();
      render({ status: "requires_action", card_saved: null, receipt_sent: false, failed_step: null });
      finish();
    } else {
      render({ status: "requires_action", card_saved: null, receipt_sent: false, failed_step: null });
      if (!poll) startPolling(current.donationId);
    }
  }

  $("auth-complete").addEventListener("click", () => authenticate("succeed"));
  $("auth-fail").addEventListener("click", () => authenticate("fail"));

  // -- starting over ------------------------------------------------------------------------------

  $("new-donation").addEventListener("click", () => {
    stopPolling();
    current = null;
    attempt = null;
    $("result").hidden = true;
    $("about").hidden = false;
    clearErrors();
    setBusy(false);
    for (const id of ["step-charged", "step-card", "step-receipt"]) setStep(id, "pending", "Waiting…", false);
    $("amount").focus();
  });

  for (const chip of document.querySelectorAll(".chip[data-amount]")) {
    chip.addEventListener("click", () => {
      $("amount").value = chip.dataset.amount;
      $("amount").focus();
    });
  }
  $("currency").addEventListener("change", syncCurrencySymbol);
  syncCurrencySymbol();
  loadConfig();
})();
