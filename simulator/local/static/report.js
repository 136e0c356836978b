/* The fundraising report: GET /_local/ops/report (donations_ops.report), and its CSV. */
"use strict";

(() => {
  const { h, getJSON, formatTime, fillRows } = App;
  const $ = (id) => document.getElementById(id);

  function query() {
    const params = new URLSearchParams();
    const from = $("report-from").value.trim() || new Date().toISOString().slice(0, 10);
    params.set("from", from);
    if ($("report-to").value.trim()) params.set("to", $("report-to").value.trim());
    return params;
  }

  function problemRows(problems, withWhat) {
    return problems.map((p) =>
      h(
        "tr",
        { dataset: { donation: p.donation_id } },
        h("td", { className: "mono small" }, p.donation_id),
        h("td", { className: "small" }, formatTime(p.created_at)),
        h("td", {}, p.amount),
        withWhat ? h("td", {}, p.what) : null,
        h("td", { className: "small" }, p.why)
      )
    );
  }

  // Monthly giving: the period's renewals, and the pledges (null counts: a stack without a Pledges table).
  function monthlyTotals(m) {
    const renewals = `${m.renewals_charged} charged, ${m.renewals_failed} failed, ${m.renewals_waiting_for_donor} waiting for the donor`;
    const pledges =
      m.active_pledges === null
        ? "– (no Pledges table)"
        : `${m.active_pledges} active, ${m.pledges_needing_attention} waiting now; ${m.pledges_lapsed} lapsed in the period`;
    return [
      ["Renewals", renewals],
      ["Recurring income", Object.values(m.recurring_income).join(", ") || "–"],
      ["Pledges", pledges],
    ];
  }

  async function show(event) {
    if (event) event.preventDefault();
    const params = query();
    $("report-csv").href = `/_local/ops/report.csv?${params}`;
    const report = await getJSON(`/_local/ops/report?${params}`);
    const answer = $("report-answer");
    answer.className = `alert ${report.receipts_missing.length ? "decline" : "success"}`;
    answer.dataset.missing = String(report.receipts_missing.length);
    answer.textContent = `Receipts: ${report.receipts_answer}`;
    $("report-period").textContent =
      report.first_day === report.last_day ? report.first_day : `${report.first_day} to ${report.last_day}`;
    const outcomes = Object.entries(report.outcomes).map(([outcome, count]) =>
      h("tr", {}, h("td", {}, outcome), h("td", { className: "num" }, String(count)))
    );
    fillRows($("report-outcomes").tBodies[0], outcomes, "No donations in this period.");
    const totals = [
      ["Donations", String(report.donations)],
      ["Received", Object.values(report.received).join(", ") || "–"],
      ["Refunded", Object.values(report.refunded).join(", ") || "–"],
      ["Receipts sent", `${report.receipts_sent} of ${report.receipts_due}`],
      ["Cards saved", `${report.cards_saved} of ${report.cards_asked} asked`],
      ...monthlyTotals(report.monthly),
    ];
    $("report-totals").replaceChildren(...totals.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    fillRows($("report-missing").tBodies[0], problemRows(report.receipts_missing, false), "None: every donor got a receipt.");
    fillRows($("report-stuck").tBodies[0], problemRows(report.stuck, true), "Nothing is stuck.");
  }

  $("report-form").addEventListener("submit", show);
  show();
})();
