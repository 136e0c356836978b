/* Operator console: what needs attention (with redrive, discard, fix email), monthly pledges and donor lookup.
   Reads /_local/ops/... (the donations-ops functions); looking never receives from a DLQ. */
"use strict";

(() => {
  const { h, getJSON, formatTime, refreshEvery, fillRows } = App;
  const $ = (id) => document.getElementById(id);
  let selected = null; // {donation, queue}

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      // The console API acts only on requests from its own pages (a custom header and the Origin).
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-Donations-Console": "1" },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error || `${url} answered ${response.status}`);
    return payload;
  }

  const queueOf = (step) => (step === "send_receipt" ? "receipt" : "tokenize");

  function renderAttention(steps) {
    const rows = [];
    let parked = 0;
    for (const view of steps) {
      for (const r of view.rows) {
        if (r.state === "parked") parked += 1;
        rows.push(
          h(
            "tr",
            { dataset: { donation: r.donation_id, state: r.state, kind: r.kind || "" } },
            h("td", { className: "mono small" }, r.donation_id),
            h("td", {}, view.step),
            h("td", {}, r.state),
            h("td", {}, r.kind || "–"),
            h("td", { className: "small mono" }, r.reason || ""),
            h("td", { className: "num" }, String(r.attempts ?? "–")),
            h("td", { className: "num" }, String(r.redrives)),
            h("td", { className: "small" }, r.redrive ? "yes" : `no: ${r.why}`),
            h(
              "td",
              {},
              h("button", { type: "button", className: "btn btn-secondary btn-sm show-detail", onclick: () => showDetail(r.donation_id, view.queue) }, "Show")
            )
          )
        );
      }
    }
    fillRows($("attention").tBodies[0], rows, "Nothing retrying or parked.");
    const dlq = steps.reduce((sum, v) => sum + v.dlq_messages, 0);
    $("attention-summary").textContent = `${rows.length} donation(s), ${parked} parked · ${dlq} message(s) in the DLQs (SQS's count; nothing received)`;
  }

  function field(label, value) {
    return [h("dt", {}, label), h("dd", { className: "small" }, value === null || value === undefined || value === "" ? "–" : String(value))];
  }

  async function showDetail(donation, queue) {
    selected = { donation, queue };
    const shown = await getJSON(`/_local/ops/show?donation=${encodeURIComponent(donation)}`);
    $("detail").hidden = false;
    $("detail-donation").textContent = donation;
    $("detail-fields").replaceChildren(
      ...field("Step", shown.step),
      ...field("State", shown.state),
      ...field("Kind", shown.kind),
      ...field("Reason", shown.reason),
      ...field("Attempts", shown.attempts),
      ...field("Failing since", formatTime(shown.failing_since)),
      ...field("Parked at", formatTime(shown.parked_at)),
      ...field("Redrives", shown.redrives),
      ...field("Redrive now?", `${shown.redrive ? "yes" : "no"}: ${shown.why}`),
      ...field("Message body", shown.message.body),
      ...field("Attributes", Object.entries(shown.message.attributes).map(([k, v]) => `${k}=${v}`).join(", ")),
      ...field("Donation", `${shown.donation.status}, ${shown.donation.amount} ${shown.donation.currency}, ${shown.donation.donor}`)
    );
    const hint = $("detail-hint");
    hint.hidden = !shown.hint;
    hint.textContent = shown.hint ? `What to do: ${shown.hint}` : "";
    $("detail-log").replaceChildren(
      ...(shown.operator_log.length
        ? shown.operator_log.map((e) => h("li", { dataset: { action: e.action } }, `${formatTime(e.at)} ${e.action}: ${e.note || ""}`))
        : [h("li", { className: "empty" }, "No operator action yet.")])
    );
    $("detail").scrollIntoView({ block: "nearest" });
  }

  function result(tone, text) {
    const box = $("action-result");
    box.className = `alert ${tone}`;
    box.dataset.tone = tone;
    box.textContent = text;
  }

  function redriveText(outcome) {
    const moved = outcome.moved.length ? `Redriven: ${outcome.moved.join(", ")}.` : "Nothing redriven.";
    const skipped = outcome.skipped
      .map((s) => ` Refused ${s.donation_id}: ${s.why}${s.reason ? ` (${s.reason})` : ""}.${s.hint ? ` What to do: ${s.hint}` : ""}`)
      .join("");
    return moved + skipped;
  }

  async function act(run) {
    if (!selected) return;
    try {
      const text = await run(selected, $("action-note").value.trim());
      await showDetail(selected.donation, selected.queue);
      await loadAttention();
      return text;
    } catch (error) {
      result("error", error.message);
    }
  }

  function wireActions() {
    $("do-redrive").addEventListener("click", () =>
      act(async (s, note) => {
        const outcome = await post("/_local/ops/redrive", { queue: s.queue, donation: s.donation, note });
        result(outcome.skipped.length ? "decline" : "success", redriveText(outcome));
      })
    );
    $("do-force-redrive").addEventListener("click", () =>
      act(async (s, note) => {
        const outcome = await post("/_local/ops/redrive", { queue: s.queue, donation: s.donation, note, force: true });
        result("success", redriveText(outcome));
      })
    );
    $("do-discard").addEventListener("click", () =>
      act(async (s, note) => {
        const outcome = await post("/_local/ops/discard", { queue: s.queue, donation: s.donation, note });
        result("success", `Discarded; ${outcome.removed_messages} message(s) removed from the DLQ; the note is on the donation.`);
      })
    );
    $("do-fix-email").addEventListener("click", () =>
      act(async (s, note) => {
        await post("/_local/ops/fix-email", { donation: s.donation, email: $("action-email").value.trim(), note });
        result("success", "Address corrected; the receipt is on its way to it.");
      })
    );
  }

  // -- donor lookup ------------------------------------------------------------------------------

  async function lookup(event) {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, id] of [["email", "lookup-email"], ["last4", "lookup-last4"], ["date", "lookup-date"]]) {
      if ($(id).value.trim()) query.set(name, $(id).value.trim());
    }
    let found = [];
    try {
      found = (await getJSON(`/_local/ops/donor?${query}`)).donations;
    } catch (error) {
      found = [];
    }
    const rows = found.map((d) =>
      h(
        "tr",
        { dataset: { donation: d.donation_id }, className: "clickable", onclick: () => story(d.donation_id) },
        h("td", { className: "mono small" }, d.donation_id),
        h("td", { className: "small" }, formatTime(d.created_at)),
        h("td", {}, d.status),
        h("td", {}, d.amount),
        h("td", { className: "small" }, d.donor),
        h("td", { className: "small" }, d.card || "–"),
        h("td", {}, d.receipt)
      )
    );
    fillRows($("lookup-results").tBodies[0], rows, "No donation found.");
  }

  async function story(donation) {
    const s = await getJSON(`/_local/ops/story?donation=${encodeURIComponent(donation)}`);
    const line = (part) => Object.entries(part).filter(([, v]) => v !== null && v !== "").map(([k, v]) => `${k}: ${v}`).join(" · ");
    const el = $("story");
    el.hidden = false;
    el.dataset.donation = donation;
    el.replaceChildren(
      ...field("Donation", `${s.donation_id}, made ${formatTime(s.created_at)} by ${s.donor.name} (${s.donor.email})`),
      ...field("Told", s.told),
      ...field("Charged", line(s.charged)),
      ...field("Card", line(s.card)),
      ...field("Receipt", line(s.receipt)),
      ...field("Trouble", s.trouble ? line(s.trouble) : "none"),
      ...field("Operators", s.operator_log.map((e) => `${e.action}: ${e.note}`).join("; ") || "none")
    );
  }

  // -- monthly pledges (as donations-ops pledges list) ----------------------------------------------

  let pledgesDue = ""; // the day last asked for (the refresh does not read a day still being typed)

  async function loadPledges() {
    const due = pledgesDue;
    let answer;
    try {
      answer = await getJSON(`/_local/ops/pledges${due ? `?due=${encodeURIComponent(due)}` : ""}`);
    } catch (error) {
      $("pledges-summary").textContent = `Not a day: ${due} (YYYY-MM-DD, UTC).`;
      return;
    }
    const rows = answer.pledges.map((p) =>
      h(
        "tr",
        { dataset: { pledge: p.pledge_id, state: p.state } },
        h("td", { className: "mono small" }, p.pledge_id),
        // Active, with a renewal waiting for the donor to authenticate it (emailed a link): say so.
        h("td", {}, p.waiting_for_donor ? `${p.state}, waiting for the donor (${p.waiting_for_donor})` : p.state),
        h("td", { className: "num" }, p.amount_display),
        h("td", {}, p.currency.toUpperCase()),
        h("td", {}, p.next_charge_on),
        h("td", { className: "small" }, p.email_masked),
        h("td", { className: "small" }, p.last_failure || "–")
      )
    );
    fillRows($("pledges").tBodies[0], rows, due ? `No pledge due on ${due}.` : "No pledge needs attention or lapsed.");
    const what = answer.due ? `due on ${answer.due}` : "needing attention or lapsed";
    $("pledges-summary").textContent = `${rows.length} pledge(s) ${what}`;
  }

  async function loadAttention() {
    renderAttention((await getJSON("/_local/ops/attention")).steps);
  }

  wireActions();
  $("lookup-form").addEventListener("submit", lookup);
  $("pledges-form").addEventListener("submit", (event) => {
    event.preventDefault();
    pledgesDue = $("pledges-due").value.trim();
    loadPledges();
  });
  refreshEvery(2000, loadPledges, null);
  refreshEvery(2000, loadAttention, null);
})();
