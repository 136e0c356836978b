/* Donation form: Stripe's Payment Element, PaymentMethod created in the browser, payment confirmed by our
 * API (docs.stripe.com/payments/finalize-payments-on-the-server, "createPaymentMethod" variant), 3-D Secure
 * finished with stripe.handleNextAction, the CAPTCHA shown only when the API asks. No framework, no build.
 * Configured by one JSON object: <script type="application/json" id="donation-form-config"> (docs/form.md). */
"use strict";

(() => {
  const STRIPE_JS = "https://js.stripe.com/v3/";
  const TURNSTILE_JS = "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit";
  const POLL_MS = 1000;
  const POLL_LIMIT_MS = 120000;
  const FINAL = new Set(["succeeded", "declined", "failed", "canceled"]);
  // What the donor is told for each error code the API documents (src/donations/errors.py); the
  // API's own message follows when it says more. A code not listed falls back to its status.
  const TITLES = {
    invalid_request: "Please check your details",
    invalid_json: "Please check your details",
    unknown_field: "Please check your details",
    missing_field: "Please check your details",
    duplicate_key: "Please check your details",
    json_too_deep: "Please check your details",
    invalid_encoding: "Please check your details",
    invalid_payment_method: "Please enter your card again",
    amount_too_small: "Please change the amount",
    amount_too_large: "Please change the amount",
    invalid_idempotency_key: "This donation could not be sent",
    weak_idempotency_key: "This donation could not be sent",
    invalid_challenge_token: "The security check failed",
    card_data_refused: "Card details go in the payment box only",
    payload_too_large: "This donation could not be sent",
    // The pledge manage page's (manage.js); listed so every API code has words.
    link_invalid: "This link is not valid",
    link_expired: "This link has expired",
    link_used: "This link was already used",
    pledge_not_made_yet: "Your monthly gift is being set up",
    nothing_to_authenticate: "This gift no longer needs you",
    card_not_saved: "Your card was not saved",
    invalid_amount: "Please check the amount",
    change_not_allowed: "This change is not possible now",
    renewal_in_progress: "This month's gift is being charged",
    unsupported_media_type: "This donation could not be sent",
    not_found: "Donation not found",
    idempotency_key_reused: "Your details changed while we were processing",
    request_in_progress: "Your donation is still being processed",
    card_declined: "Your card was declined",
    expired_card: "Your card has expired",
    incorrect_cvc: "Your card's security code is incorrect",
    processing_error: "Your card could not be processed",
    authentication_required: "Your bank needs you to authenticate",
    service_unavailable: "We could not take your donation just now",
    too_many_attempts: "Too many attempts",
    challenge_required: "Please confirm you are human",
    challenge_failed: "Please confirm you are human again",
  };
  const STATUS_TITLES = { 400: TITLES.invalid_request, 402: TITLES.card_declined, 429: TITLES.too_many_attempts };
  const RETRY = new Set([0, 409, 429, 500, 502, 503, 504]);

  const root = document.getElementById("donation-form");
  const configTag = document.getElementById("donation-form-config");
  if (!root || !configTag) return;
  const config = JSON.parse(configTag.textContent);
  const api = String(config.apiUrl || "").replace(/\/$/, "");
  const currencies = config.currencies || { usd: [1000, 2500, 5000] };
  const org = config.organization || "our charity";

  // -- the form ---------------------------------------------------------------------------------
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === false || value == null) continue;
      if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    el.append(...children.filter((child) => child != null));
    return el;
  }
  const field = (id, label, input, hint) =>
    h("div", { class: "dn-field" }, h("label", { for: id, text: label }), input, hint);

  const codes = Object.keys(currencies);
  const currency = h("select", { id: "dn-currency", name: "currency" },
    ...codes.map((code) => h("option", { value: code, text: code.toUpperCase() })));
  const amount = h("input", { id: "dn-amount", name: "amount", inputmode: "decimal", autocomplete: "off",
    required: true, "aria-describedby": "dn-amount-hint" });
  const presets = h("div", { class: "dn-presets", role: "group", "aria-label": "Suggested amounts" });
  const name = h("input", { id: "dn-name", name: "name", autocomplete: "name", required: true, maxlength: 200 });
  const email = h("input", { id: "dn-email", name: "email", type: "email", autocomplete: "email", required: true,
    maxlength: 254, "aria-describedby": "dn-email-hint" });
  const save = h("input", { id: "dn-save", name: "save_card", type: "checkbox" });
  const monthly = h("input", { id: "dn-monthly", name: "monthly", type: "checkbox", "aria-describedby": "dn-monthly-hint" });
  const monthlyHint = h("p", { class: "dn-hint", id: "dn-monthly-hint", hidden: true,
    text: "Your card will be saved with Stripe and charged this amount every month on today's date (the 28th at most). Each receipt has a link to change or cancel it." });
  const payment = h("div", { id: "dn-payment", class: "dn-payment" });
  const challenge = h("div", { id: "dn-challenge", class: "dn-challenge", hidden: true },
    h("p", { text: "Please confirm you are human; your donation is then sent again." }), h("div", { id: "dn-widget" }));
  const alert = h("div", { id: "dn-alert", class: "dn-alert", role: "alert", tabindex: "-1" });
  const status = h("p", { id: "dn-status", class: "dn-status", role: "status" });
  const button = h("button", { type: "submit", id: "dn-submit", class: "dn-submit", disabled: true }, "Donate");
  const form = h("form", { class: "dn-form", novalidate: true, "aria-label": `Donate to ${org}` },
    h("fieldset", {}, h("legend", { text: "Your gift" }),
      h("div", { class: "dn-row" },
        field("dn-amount", "Amount", amount, h("p", { class: "dn-hint", id: "dn-amount-hint" })),
        codes.length > 1 ? field("dn-currency", "Currency", currency) : null),
      presets,
      config.offerMonthly === false ? null
        : h("div", {}, h("div", { class: "dn-check" }, monthly, h("label", { for: "dn-monthly", text: "Give this every month" })), monthlyHint)),
    h("fieldset", {}, h("legend", { text: "About you" }),
      field("dn-name", "Full name", name),
      field("dn-email", "Email", email, h("p", { class: "dn-hint", id: "dn-email-hint", text: "Your receipt is sent here." }))),
    h("fieldset", {}, h("legend", { text: "Payment" }), payment,
      config.offerSaveCard === false ? null
        : h("div", { class: "dn-check" }, save, h("label", { for: "dn-save", text: "Save my card with Stripe for future gifts" }))),
    challenge, alert, button, status);
  root.replaceChildren(form);

  const formatter = (code) => new Intl.NumberFormat(document.documentElement.lang || undefined, { style: "currency", currency: code.toUpperCase() });
  const digits = (code) => formatter(code).resolvedOptions().maximumFractionDigits;
  const money = (minor, code) => formatter(code).format(minor / 10 ** digits(code));

  function toMinor(text, code) {
    const places = digits(code);
    const fraction = places ? `(?:[.,](\\d{1,${places}}))?` : ""; // none for zero-decimal currencies (jpy)
    const match = new RegExp(`^(\\d{1,9})${fraction}$`).exec(text.trim().replace(/[\s,](?=\d{3}\b)/g, ""));
    return match ? Number(match[1]) * 10 ** places + Number((match[2] || "").padEnd(places, "0") || 0) : null;
  }

  function showPresets() {
    const code = currency.value || codes[0];
    presets.replaceChildren(...(currencies[code] || []).map((minor) =>
      h("button", { type: "button", class: "dn-chip", "aria-pressed": "false", "data-amount": minor,
        onclick: () => { amount.value = (minor / 10 ** digits(code)).toFixed(digits(code)); changed(); } },
      money(minor, code))));
    const suggested = (currencies[code] || [])[1] || (currencies[code] || [])[0];
    if (suggested) {
      document.getElementById("dn-amount-hint").textContent = `For example ${(suggested / 10 ** digits(code)).toFixed(digits(code))}`;
      if (!amount.value) amount.value = (suggested / 10 ** digits(code)).toFixed(digits(code));
    }
  }

  /** The amount and currency as Stripe's Elements must know them (deferred intent: they match the charge). */
  function changed() {
    const code = currency.value || codes[0];
    const minor = toMinor(amount.value, code);
    for (const chip of presets.children) chip.setAttribute("aria-pressed", String(Number(chip.dataset.amount) === minor));
    button.textContent = minor ? `Donate ${money(minor, code)}` : "Donate";
    // A monthly gift is charged on the saved card: saving it is part of the choice, and the donor is told so.
    save.disabled = monthly.checked;
    if (monthly.checked) save.checked = true;
    monthlyHint.hidden = !monthly.checked;
    if (elements && minor) elements.update({ amount: minor, currency: code, setupFutureUsage: save.checked ? "off_session" : null });
  }

  // -- warm-up: the donor's first focus wakes the API before the Donate click -------------------------
  let warmed = false;
  function warmUp() {
    if (warmed) return;
    warmed = true;
    fetch(`${api}/warmup`, { method: "POST", keepalive: true }).catch(() => {});
  }
  form.addEventListener("focusin", warmUp);

  // -- Stripe ---------------------------------------------------------------------------------------
  let stripe = null;
  let elements = null;
  let cardChanged = true; // the card in the element differs from the attempt's PaymentMethod

  function load(src) {
    return new Promise((resolve, reject) => {
      const tag = h("script", { src, async: true });
      tag.onload = resolve;
      tag.onerror = () => reject(new Error(`${src} could not be loaded`));
      document.head.append(tag);
    });
  }

  async function startStripe() {
    await load(config.stripeJsUrl || STRIPE_JS);
    stripe = window.Stripe(config.stripePublishableKey);
    const code = currency.value || codes[0];
    elements = stripe.elements({
      mode: "payment",
      amount: toMinor(amount.value, code) || currencies[code][0],
      currency: code,
      paymentMethodCreation: "manual", // createPaymentMethod, then our API confirms
      // Cards only: what our API's PaymentIntent allows; Apple Pay and Google Pay are card PaymentMethods.
      paymentMethodTypes: ["card"],
    });
    const element = elements.create("payment", { fields: { billingDetails: { name: "never", email: "never" } } });
    element.on("change", () => (cardChanged = true));
    element.on("focus", warmUp);
    element.mount(payment);
    button.disabled = false;
    root.dataset.ready = "true";
  }

  // -- messages -------------------------------------------------------------------------------------
  function say(text) {
    status.textContent = text;
  }

  function clearErrors() {
    alert.replaceChildren();
    alert.className = "dn-alert";
    for (const el of form.querySelectorAll(".dn-error")) el.remove();
    for (const el of form.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      el.setAttribute("aria-describedby", (el.getAttribute("aria-describedby") || "").replace(/\s*\S+-error\b/g, "").trim());
    }
  }

  function fieldError(input, message) {
    const id = `${input.id}-error`;
    input.closest(".dn-field").append(h("p", { class: "dn-error", id, text: message }));
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", `${input.getAttribute("aria-describedby") || ""} ${id}`.trim());
  }

  /** The error, announced (role=alert) and focused so screen readers and keyboards land on it. */
  function showError(title, message, extra) {
    alert.className = "dn-alert dn-shown";
    alert.replaceChildren(h("strong", { text: title }), " ", message || "", ...(extra || []));
    alert.focus({ preventScroll: false });
  }

  function retryAfter(response) {
    const value = response && response.headers.get("Retry-After");
    if (!value) return 0;
    const seconds = /^\d+$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
    return Number.isFinite(seconds) ? Math.min(120, Math.max(0, Math.ceil(seconds))) : 0;
  }

  /** "Try again" for the same attempt (same body, same Idempotency-Key), enabled after Retry-After. */
  function offerRetry(title, message, wait) {
    const retry = h("button", { type: "button", class: "dn-retry", id: "dn-retry", disabled: wait > 0 },
      wait > 0 ? `Try again in ${wait} s` : "Try again");
    const note = h("span", { text: " Trying again continues this same donation: you are never charged twice." });
    showError(title, message, [note, retry]);
    let left = wait;
    const tick = setInterval(() => {
      left -= 1;
      if (left > 0) return void (retry.textContent = `Try again in ${left} s`);
      clearInterval(tick);
      retry.disabled = false;
      retry.textContent = "Try again";
      say("You can try again now.");
    }, 1000);
    if (wait <= 0) clearInterval(tick);
    retry.addEventListener("click", () => { clearErrors(); send(attempt); });
  }

  // -- submitting -----------------------------------------------------------------------------------
  let attempt = null; // {key, details, body, open, token}
  let busy = false;

  function setBusy(value, text) {
    busy = value;
    button.disabled = value;
    form.setAttribute("aria-busy", String(value));
    if (text !== undefined) say(text);
  }

  function details() {
    clearErrors();
    const code = currency.value || codes[0];
    const minor = toMinor(amount.value, code);
    const problems = [];
    if (!minor) problems.push([amount, `Enter an amount such as ${money((currencies[code] || [2500])[0], code)}.`]);
    if (!name.value.trim()) problems.push([name, "Enter your name."]);
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.value.trim())) problems.push([email, "Enter your email address, like ada@example.org."]);
    for (const [input, message] of problems) fieldError(input, message);
    if (problems.length) {
      showError("Please correct the highlighted fields.", "");
      problems[0][0].focus();
      return null;
    }
    const body = { amount: minor, currency: code, name: name.value.trim(), email: email.value.trim(), save_card: save.checked };
    if (monthly.checked) body.monthly = true;
    if (config.campaign) body.metadata = { campaign: String(config.campaign) };
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy || !elements) return; // never two submissions at once
    const body = details();
    if (!body) return;
    const same = attempt && attempt.open && !cardChanged && attempt.details === JSON.stringify(body);
    setBusy(true, "Checking your card…");
    if (!same) {
      const checked = await elements.submit();
      if (checked.error) {
        setBusy(false, "");
        return showError("Please check your card details.", checked.error.message);
      }
      const created = await stripe.createPaymentMethod({ elements, params: { billing_details: { name: body.name, email: body.email } } });
      if (created.error) {
        setBusy(false, "");
        return showError(TITLES[created.error.code] || "Please check your card details.", created.error.message);
      }
      cardChanged = false;
      // One Idempotency-Key per donation, kept for every retry of this very body.
      attempt = { key: crypto.randomUUID(), details: JSON.stringify(body), open: true,
        body: JSON.stringify({ ...body, payment_method: created.paymentMethod.id }), gift: body };
    }
    send(attempt);
  });

  async function send(sent) {
    setBusy(true, "Sending your donation…");
    let response = null;
    let answer = null;
    try {
      const headers = { "Content-Type": "application/json", "Idempotency-Key": sent.key };
      if (sent.token) headers["Challenge-Token"] = sent.token;
      response = await fetch(`${api}/donations`, { method: "POST", headers, body: sent.body });
      answer = await response.json().catch(() => null);
    } catch (failure) {
      response = null;
    }
    const code = response ? response.status : 0;
    const error = (answer && answer.error) || {};
    root.dataset.lastStatus = String(code);
    setBusy(false, "");
    if (code === 201 || code === 202) {
      sent.open = false;
      challenge.hidden = true;
      return code === 202 ? authenticate(sent, answer) : follow(sent, answer.donation_id);
    }
    const title = TITLES[error.code] || STATUS_TITLES[code] || "Your donation could not be completed";
    const message = error.message || (answer && answer.message) || "";
    if (code === 403 && error.challenge) return askHuman(sent, title, error);
    if (RETRY.has(code)) {
      const fallback = code === 0 ? "We could not reach the server. Check your connection." : "Please try again shortly.";
      return offerRetry(title, message || fallback, retryAfter(response));
    }
    sent.open = false; // anything else: the next submission is a new donation, with a new key
    if (code === 402) {
      cardChanged = true;
      return showError(title, `${message} Nothing was charged; please try another card.`);
    }
    const input = { amount, currency, name, email }[error.field];
    if (input) fieldError(input, message);
    if (error.field === "payment_method") cardChanged = true;
    showError(title, message);
  }

  // -- 3-D Secure, then the outcome ------------------------------------------------------------------
  async function authenticate(sent, answer) {
    setBusy(true, "Your bank asks you to confirm this payment.");
    const result = await stripe.handleNextAction({ clientSecret: answer.client_secret });
    setBusy(false);
    if (result.error) {
      cardChanged = true;
      say("");
      return showError("Authentication failed", `${result.error.message || ""} Nothing was charged; try again or use another card.`);
    }
    follow(sent, answer.donation_id);
  }

  async function follow(sent, donationId) {
    setBusy(true, "Payment received. Confirming your donation…");
    const deadline = Date.now() + POLL_LIMIT_MS;
    let donation = null;
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`${api}/donations/${encodeURIComponent(donationId)}`, { headers: { Accept: "application/json" } });
        if (response.ok) donation = await response.json();
      } catch (failure) {
        donation = donation || null;
      }
      if (donation && FINAL.has(donation.status) && (donation.status !== "succeeded" || donation.receipt_sent || donation.failed_step)) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    setBusy(false);
    root.dataset.donationId = donationId;
    root.dataset.outcome = donation ? donation.status : "unknown";
    if (donation && donation.status === "succeeded") return thank(sent.gift, donation, donationId);
    if (donation && FINAL.has(donation.status)) {
      cardChanged = true;
      return showError(TITLES.card_declined, "The payment did not go through. Nothing was charged; please try another card.");
    }
    say("Your donation is still being confirmed. You will receive an email receipt once it is complete.");
  }

  function thank(gift, donation, donationId) {
    const receipt = donation.receipt_sent ? `A receipt was emailed to ${gift.email}.` : `Your receipt will be emailed to ${gift.email}.`;
    const thanks = h("div", { class: "dn-thanks", id: "dn-thanks", tabindex: "-1" },
      h("h2", { text: `Thank you, ${gift.name}!` }),
      h("p", { text: `Your gift of ${money(gift.amount, gift.currency)} to ${org} is complete. ${receipt}` }),
      h("p", { class: "dn-hint" }, "Reference: ", h("code", { text: donationId })));
    form.replaceWith(thanks);
    thanks.focus();
  }

  // -- the CAPTCHA, only when the API asks for it (403 challenge_required / challenge_failed) -----------
  let widget = null;
  let turnstileLoaded = null;
  async function askHuman(sent, title, error) {
    challenge.hidden = false;
    showError(title, error.message);
    try {
      turnstileLoaded = turnstileLoaded || load(error.challenge.script || TURNSTILE_JS);
      await turnstileLoaded;
      if (widget !== null) return window.turnstile.reset(widget);
      widget = window.turnstile.render("#dn-widget", {
        sitekey: error.challenge.site_key || config.turnstileSiteKey,
        action: "donate",
        callback: (token) => {
          attempt.token = token;
          clearErrors();
          send(attempt);
        },
      });
    } catch (failure) {
      showError(title, "The security check could not be loaded. Please reload the page.");
    }
  }

  currency.addEventListener("change", () => { amount.value = ""; showPresets(); changed(); });
  amount.addEventListener("input", changed);
  save.addEventListener("change", changed);
  monthly.addEventListener("change", changed);
  showPresets();
  changed();
  startStripe().catch(() => showError("Payments are unavailable", "The payment form could not be loaded. Please reload the page."));
})();
