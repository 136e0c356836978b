/* Receipts outbox: GET /_local/outbox every 2 s. */
"use strict";

(() => {
  const { h, getJSON, formatTime, ago, refreshEvery, fillRows } = App;
  const table = document.getElementById("outbox");
  const highlight = new URLSearchParams(location.search).get("donation");

  function row(email) {
    const data = email.dynamic_template_data || {};
    const donationId = (email.custom_args || {}).donation_id || data.receipt_number || "";
    const from = email.from || {};
    return h(
      "tr",
      { dataset: { donationId, messageId: email.message_id || "" }, className: donationId && donationId === highlight ? "highlight" : "" },
      h("td", { className: "nowrap" }, formatTime(email.received_at), h("span", { className: "cell-sub" }, ago(email.received_at))),
      h("td", {}, (email.to || []).join(", "), h("span", { className: "cell-sub" }, `from ${from.email || ""}`)),
      h("td", { className: "nowrap" }, data.donor_name || ""),
      h("td", { className: "num nowrap" }, data.amount_display || "", h("span", { className: "cell-sub" }, data.date || "")),
      h("td", {}, h("code", {}, donationId)),
      receiptCell(email),
      h(
        "td",
        {},
        h("code", { className: "cell-sub", title: "SendGrid message id" }, email.message_id || ""),
        h(
          "details",
          { className: "json" },
          h("summary", {}, "Template data"),
          h("pre", {}, JSON.stringify({ template_id: email.template_id, dynamic_template_data: data, custom_args: email.custom_args || {} }, null, 2))
        )
      )
    );
  }

  // The receipt as the donor reads it: its subject, and a link to the rendered email.
  function receiptCell(email) {
    const rendered = email.rendered;
    if (!rendered) return h("td", { className: "muted" }, "Not rendered (no such template in the emulator)");
    if (rendered.error) return h("td", {}, h("span", { className: "pill bad" }, "Template error"), h("span", { className: "cell-sub" }, rendered.error));
    const href = `/outbox/receipt?message=${encodeURIComponent(email.message_id)}`;
    return h("td", { className: "nowrap" }, h("a", { href, title: rendered.subject || "" }, "View receipt"));
  }

  // Keep open <details> open across refreshes.
  function openMessages() {
    return new Set(Array.from(table.querySelectorAll("details[open]"), (d) => d.closest("tr").dataset.messageId));
  }

  async function load() {
    const [answer, config] = await Promise.all([getJSON("/_local/outbox"), configOnce()]);
    const emails = answer.emails || [];
    const open = openMessages();
    const rows = emails.map(row);
    for (const tr of rows) if (open.has(tr.dataset.messageId)) tr.querySelector("details").open = true;
    fillRows(table.tBodies[0], rows, config && config.sendgrid_emulator === false
      ? "Mail goes to the real SendGrid (SENDGRID_API_KEY is set), so nothing is kept here."
      : "No receipts yet. Make a donation and its receipt appears here within seconds.");
    document.getElementById("outbox-count").textContent = String(emails.length);
  }

  let config;
  async function configOnce() {
    if (config === undefined) config = await getJSON("/_local/config").catch(() => null);
    return config;
  }

  if (highlight) {
    const note = document.getElementById("outbox-note");
    note.hidden = false;
    note.replaceChildren("Highlighting the receipt of ", h("code", {}, highlight), ".");
  }
  refreshEvery(2000, load, document.getElementById("outbox-updated"));
})();
