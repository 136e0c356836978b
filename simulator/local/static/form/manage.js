// The pledge manage page: a donor sees a monthly gift, changes its amount, skips a month, pauses and resumes it,
// gives it a new card and cancels it through the signed link emailed to them (docs/monthly-giving.md, "Managing a
// pledge"). The link's token is in the URL's fragment, which
// browsers never send to a server; this page posts it in a JSON body. No account, no cookies.
(() => {
  "use strict";
  const root = document.getElementById("pledge-page");
  const config = JSON.parse(document.getElementById("pledge-page-config").textContent || "{}");
  const api = (config.apiUrl || "").replace(/\/$/, "");
  let token = "";

  function h(tag, attributes, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === false || value == null) continue;
      if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    el.append(...children.filter((child) => child != null));
    return el;
  }
  const show = (...children) => root.replaceChildren(...children.filter((child) => child != null));
  const money = (minor, code) => {
    const format = new Intl.NumberFormat(document.documentElement.lang || undefined, { style: "currency", currency: code.toUpperCase() });
    return format.format(minor / 10 ** format.resolvedOptions().maximumFractionDigits);
  };
  const day = (iso) => new Date(`${iso}T12:00:00Z`).toLocaleDateString(document.documentElement.lang || undefined, { dateStyle: "long", timeZone: "UTC" });

  async function post(path, body) {
    try {
      const response = await fetch(`${api}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      return { status: response.status, body: await response.json().catch(() => ({})) };
    } catch (failure) {
      return { status: 0, body: {} };
    }
  }

  /** What the token says: its pledge (p) and purpose (u). Readable; only the server can check its signature. */
  function claims() {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload));
    } catch (failure) {
      return {};
    }
  }

  function loadStripe() {
    if (window.Stripe) return Promise.resolve(window.Stripe(config.stripePublishableKey));
    return new Promise((resolve, reject) => {
      const tag = h("script", { src: config.stripeJsUrl || "https://js.stripe.com/v3/", async: true });
      tag.onload = () => resolve(window.Stripe(config.stripePublishableKey));
      tag.onerror = () => reject(new Error("Stripe.js could not be loaded"));
      document.head.append(tag);
    });
  }

  /** A renewal the bank wants confirmed: our API confirms it on-session, Stripe.js shows the bank's challenge. */
  async function authenticate(id) {
    const path = `/pledges/${encodeURIComponent(id)}/authenticate`;
    const said = h("p", { id: "pg-status", role: "status" });
    const finish = async () => {
      const done = await post(`${path}/complete`, { token });
      if (done.status === 200 && done.body.status === "succeeded") {
        return show(h("p", { id: "pg-paid", text: `Thank you: your gift of ${money(done.body.amount, done.body.currency)} is confirmed. A receipt is on its way.` }));
      }
      said.textContent = "Your bank did not confirm the payment. You can try again.";
    };
    const answer = await post(path, { token });
    if (answer.status !== 200) {
      const error = answer.body.error || {};
      return askForLink(error.code === "link_expired" ? "This link has expired" : "This gift cannot be confirmed", error.message || "Ask for a new link below.");
    }
    if (answer.body.status === "succeeded") return finish();
    const button = h("button", { type: "submit", class: "dn-submit", id: "pg-authenticate", onclick: async () => {
      button.disabled = true;
      said.textContent = "Opening your bank's check…";
      try {
        const stripe = await loadStripe();
        const result = await stripe.handleNextAction({ clientSecret: answer.body.client_secret });
        if (result.error) said.textContent = result.error.message || "Your bank did not confirm the payment.";
        await finish();
      } catch (failure) {
        said.textContent = "The payment page could not be loaded. Please reload the page.";
      }
      button.disabled = false;
    } }, `Confirm ${money(answer.body.amount, answer.body.currency)}`);
    show(h("p", { id: "pg-ask", text: `Your bank asks you to confirm this month's gift of ${money(answer.body.amount, answer.body.currency)}. Nothing has been charged yet.` }), button, said);
  }

  /** A new card: the Payment Element makes the PaymentMethod, our API a SetupIntent on the pledge's Customer, and
   * Stripe.js confirmCardSetup saves the card (the bank's check in the page if it asks), then our API records it
   * (docs.stripe.com/payments/save-and-reuse; docs.stripe.com/js/setup_intents/confirm_card_setup). */
  async function updateCard(pledge, place, said) {
    const path = `/pledges/${encodeURIComponent(pledge.pledge_id)}/card`;
    const frame = h("div", { id: "pg-card-element" });
    const save = h("button", { type: "submit", class: "dn-submit", id: "pg-card-save", disabled: true }, "Save this card");
    let stripe = null;
    let elements = null;
    const form = h("form", { class: "dn-form", id: "pg-card-form", novalidate: true, onsubmit: async (event) => {
      event.preventDefault();
      save.disabled = true;
      said.textContent = "Saving your card…";
      const failed = (text) => { said.textContent = text; save.disabled = false; };
      const checked = await elements.submit();
      if (checked.error) return failed(checked.error.message || "Please check your card details.");
      const created = await stripe.createPaymentMethod({ elements });
      if (created.error) return failed(created.error.message || "Please check your card details.");
      const attempt = crypto.randomUUID().replace(/-/g, "");
      const started = await post(path, { token, attempt });
      if (started.status !== 200) return failed((started.body.error && started.body.error.message) || "That did not work; please try again.");
      const confirmed = await stripe.confirmCardSetup(started.body.client_secret, { payment_method: created.paymentMethod.id });
      if (confirmed.error) return failed(confirmed.error.message || "Your card was not saved. You can try again.");
      const done = await post(`${path}/complete`, { token, setup_intent_id: started.body.setup_intent_id });
      if (done.status !== 200) return failed((done.body.error && done.body.error.message) || "That did not work; please try again.");
      render(done.body);
      document.getElementById("pg-status").textContent = "Your new card is saved: your next monthly gift will be charged to it.";
    } }, frame, save);
    place.replaceChildren(form);
    try {
      stripe = await loadStripe();
      elements = stripe.elements({ mode: "setup", currency: pledge.currency, paymentMethodCreation: "manual",
        setupFutureUsage: "off_session", paymentMethodTypes: ["card"] });
      elements.create("payment").mount(frame);
      save.disabled = false;
    } catch (failure) {
      said.textContent = "The card form could not be loaded. Please reload the page.";
    }
  }

  function askForLink(title, text) {
    const email = h("input", { id: "pg-email", type: "email", autocomplete: "email", required: true, maxlength: 254 });
    const said = h("p", { id: "pg-link-status", role: "status" });
    const form = h("form", { class: "dn-form", novalidate: true, onsubmit: async (event) => {
      event.preventDefault();
      const answer = await post("/pledge-links", { email: email.value.trim() });
      said.textContent = answer.status === 202 ? answer.body.message : "That did not work; please check the address and try again.";
    } },
    h("div", { class: "dn-field" }, h("label", { for: "pg-email", text: "Your email address" }), email),
    h("button", { type: "submit", class: "dn-submit", id: "pg-send-link" }, "Email me a link"), said);
    show(h("div", { class: "dn-alert", role: "alert", id: "pg-alert" }, h("strong", { text: title }), h("p", { text: text })), form);
  }

  const STATES = {
    active: "Active",
    canceled: "Canceled: you will not be charged again",
    lapsed: "Stopped: your card could not be charged. Give it a card that works to restart your gift.",
    needs_attention: "Waiting for you: please update your card",
    paused: "Paused: nothing is charged until you resume it",
  };
  const DONE = {
    cancel: "Your monthly gift is canceled. Thank you for your support. We have emailed you a confirmation.",
    amount: "Your new amount is saved: your next monthly gift will be charged it.",
    skip: "Done: next month is skipped.",
    pause: "Your monthly gift is paused. Resume it here whenever you like.",
    resume: "Your monthly gift is resumed. The months it was paused are not charged.",
  };
  const digits = (code) => new Intl.NumberFormat(undefined, { style: "currency", currency: code.toUpperCase() }).resolvedOptions().maximumFractionDigits;

  /** One change (cancel, amount, skip, pause, resume): a fresh one-time token from the manage link, then the change
   * with it. Each token works once, so a replayed request changes nothing. */
  async function act(pledge, route, said, extra) {
    said.textContent = "Saving…";
    const id = encodeURIComponent(pledge.pledge_id);
    const fresh = await post(`/pledges/${id}`, { token });
    const once = fresh.status !== 200 ? null : route === "cancel" ? fresh.body.cancel_token : (fresh.body.action_tokens || {})[route];
    if (!once) { said.textContent = (fresh.body.error && fresh.body.error.message) || "This is not possible now. Please reload the page."; return; }
    const answer = await post(`/pledges/${id}/${route}`, { token: once, ...(extra || {}) });
    if (answer.status !== 200) { said.textContent = (answer.body.error && answer.body.error.message) || "That did not work; please try again."; return; }
    render(answer.body);
    document.getElementById("pg-status").textContent = DONE[route];
  }

  function amountForm(pledge, said) {
    const input = h("input", { id: "pg-amount", type: "number", inputmode: "decimal", min: "0", step: "any", required: true,
      value: String(pledge.amount / 10 ** digits(pledge.currency)) });
    return h("form", { class: "dn-form", id: "pg-amount-form", novalidate: true, onsubmit: (event) => {
      event.preventDefault();
      const minor = Math.round(Number(input.value) * 10 ** digits(pledge.currency));
      if (!Number.isFinite(minor) || minor <= 0) { said.textContent = "Please enter an amount."; return; }
      act(pledge, "amount", said, { amount: minor });
    } },
    h("div", { class: "dn-field" }, h("label", { for: "pg-amount", text: `New monthly amount (${pledge.currency.toUpperCase()})` }), input),
    h("button", { type: "submit", id: "pg-amount-save" }, "Change the amount"));
  }

  function render(pledge) {
    const canceled = pledge.state === "canceled";
    const rows = [
      ["Amount", `${money(pledge.amount, pledge.currency)} a month`],
      ["Status", STATES[pledge.state] || STATES.needs_attention],
      canceled || pledge.state === "lapsed" || pledge.state === "paused" ? null : ["Next gift", day(pledge.next_charge_on)],
      pledge.card_last4 ? ["Card", `${(pledge.card_brand || "card").toUpperCase()} ending ${pledge.card_last4}`] : null,
    ].filter(Boolean);
    const summary = h("dl", { id: "pg-pledge" }, ...rows.flatMap(([name, value]) => [h("dt", { text: name }), h("dd", { text: value })]));
    const said = h("p", { id: "pg-status", role: "status" });
    if (canceled) return show(summary, said);
    const allowed = pledge.action_tokens || {};
    const button = (route, id, text) => (allowed[route] ? h("button", { type: "button", id, onclick: () => act(pledge, route, said) }, text) : null);
    // One click cancels; the donor gets an email confirming it.
    const cancel = h("button", { type: "button", id: "pg-cancel", onclick: () => act(pledge, "cancel", said) }, "Cancel my monthly gift");
    const card = h("div", { id: "pg-card" });
    const change = h("button", { type: "button", id: "pg-update-card", onclick: () => { change.hidden = true; updateCard(pledge, card, said); } },
      pledge.state === "active" || pledge.state === "paused" ? "Use another card" : "Update my card and restart my gift");
    show(summary, allowed.amount ? amountForm(pledge, said) : null, button("skip", "pg-skip", "Skip next month"),
      button("pause", "pg-pause", "Pause my gift"), button("resume", "pg-resume", "Resume my gift"), change, card, cancel, said);
  }

  async function load() {
    token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
    const { p: id, u: purpose } = claims();
    if (id && purpose === "authenticate") return authenticate(id);
    if (!id) return askForLink("Manage your monthly gift", "Enter the address your receipts go to and we will email you a link.");
    const answer = await post(`/pledges/${encodeURIComponent(id)}`, { token });
    if (answer.status === 200) return render(answer.body);
    const error = answer.body.error || {};
    const titles = { link_expired: "This link has expired", pledge_not_made_yet: "Your monthly gift is being set up" };
    askForLink(titles[error.code] || "This link does not work", error.message || "Ask for a new link below.");
  }
  // A link opened while the page is open (the same page, another fragment) does not reload it.
  window.addEventListener("hashchange", load);
  load();
})();
