/* One receipt from the outbox, rendered as the donor reads it: GET /_local/outbox/{message_id}. */
"use strict";

(async () => {
  const { getJSON, formatTime } = App;
  const messageId = new URLSearchParams(location.search).get("message") || "";
  const frame = document.getElementById("receipt-html");
  const problem = document.getElementById("receipt-error");

  for (const button of document.querySelectorAll("[data-width]")) {
    button.addEventListener("click", () => {
      frame.style.width = button.dataset.width;
      for (const other of document.querySelectorAll("[data-width]")) other.setAttribute("aria-pressed", String(other === button));
    });
  }

  let email;
  try {
    email = await getJSON(`/_local/outbox/${encodeURIComponent(messageId)}`);
  } catch (error) {
    document.getElementById("receipt-envelope").textContent = `No receipt with message id ${messageId}.`;
    return;
  }
  const rendered = email.rendered || {};
  document.getElementById("receipt-subject").textContent = rendered.subject || "(not rendered)";
  document.getElementById("receipt-envelope").textContent =
    `To ${(email.to || []).join(", ")} · from ${(email.from || {}).email || ""} · ${formatTime(email.received_at)} · message ${email.message_id}`;
  if (rendered.error || !email.rendered) {
    problem.hidden = false;
    problem.textContent = rendered.error || "The emulator has no template with this id, so nothing was rendered.";
  }
  frame.srcdoc = rendered.html || "";
  document.getElementById("receipt-text").textContent = rendered.text || "(no plain-text part)";
})();
