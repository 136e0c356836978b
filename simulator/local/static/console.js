/* Operator console: GET /_local/status every 2 s. */
"use strict";

(() => {
  const { h, getJSON, formatTime, ago, refreshEvery, fillRows } = App;
  const $ = (id) => document.getElementById(id);
  const STATE_ORDER = { ALARM: 0, INSUFFICIENT_DATA: 1, OK: 2 };
  const STATE_LABEL = { OK: "OK", ALARM: "ALARM", INSUFFICIENT_DATA: "NO DATA" };

  const isDlq = (name) => /dlq|dead/i.test(name);

  function pill(state) {
    return h("span", { className: "pill", dataset: { state }, title: state }, STATE_LABEL[state] || state);
  }

  function renderQueues(queues) {
    const rows = queues.map((q) =>
      h(
        "tr",
        { dataset: { queue: q.queue, state: isDlq(q.queue) && q.visible > 0 ? "ALARM" : "OK" } },
        h("td", {}, q.queue, isDlq(q.queue) ? h("span", { className: "cell-sub" }, "dead-letter queue") : null),
        h("td", { className: "num" }, String(q.visible)),
        h("td", { className: "num" }, String(q.in_flight))
      )
    );
    fillRows($("queues").tBodies[0], rows, "No queues.");
    const waiting = queues.filter((q) => !isDlq(q.queue)).reduce((sum, q) => sum + q.visible + q.in_flight, 0);
    const parked = queues.filter((q) => isDlq(q.queue)).reduce((sum, q) => sum + q.visible + q.in_flight, 0);
    $("messages-waiting").textContent = String(waiting);
    $("messages-parked").textContent = String(parked);
    $("tile-dlq").dataset.tone = parked ? "bad" : "ok";
  }

  function renderAlarms(alarms) {
    const sorted = [...alarms].sort(
      (a, b) => (STATE_ORDER[a.state] ?? 3) - (STATE_ORDER[b.state] ?? 3) || a.name.localeCompare(b.name)
    );
    const rows = sorted.map((a) =>
      h(
        "tr",
        { dataset: { state: a.state, alarm: a.name } },
        h("td", {}, pill(a.state)),
        h(
          "td",
          { className: "nowrap" },
          h("span", { className: "mono" }, a.name),
          a.runbook ? h("a", { className: "cell-sub runbook-link", href: a.runbook, target: "_blank" }, "runbook §" + a.section) : null
        ),
        h(
          "td",
          { className: "small alarm-cause" },
          a.cause || "",
          a.first_command ? h("code", { className: "cell-sub first-command" }, a.first_command) : null
        ),
        h("td", { className: "muted small" }, a.reason || "")
      )
    );
    fillRows($("alarms").tBodies[0], rows, "No alarms found for this stack.");
    const firing = alarms.filter((a) => a.state === "ALARM").length;
    $("alarms-firing").textContent = String(firing);
    $("tile-alarms").dataset.tone = firing ? "bad" : "ok";
    $("alarm-summary").textContent = `${alarms.length} alarms · ${firing} in ALARM`;
  }

  function renderNotifications(notifications) {
    const list = $("notifications");
    $("notification-count").textContent = String(notifications.length);
    if (!notifications.length) {
      list.replaceChildren(h("li", { className: "empty" }, "No notifications yet. Alarm state changes appear here."));
      return;
    }
    list.replaceChildren(
      ...notifications.map((n) => {
        const m = n.message || {};
        const state = m.NewStateValue || "";
        return h(
          "li",
          { dataset: { state, alarm: m.AlarmName || "" } },
          h(
            "div",
            { className: "feed-head" },
            state ? pill(state) : null,
            h("span", { className: "feed-title" }, m.AlarmName || n.subject || "Notification"),
            h("time", { className: "feed-time", datetime: n.received_at || "", title: formatTime(n.received_at) }, ago(n.received_at))
          ),
          h("div", { className: "feed-body" }, n.subject || m.NewStateReason || ""),
          m.Notifier && m.Notifier.runbook
            ? h("a", { className: "small runbook-link", href: "/_local/runbook#" + m.Notifier.section, target: "_blank" }, "runbook §" + m.Notifier.section)
            : null
        );
      })
    );
  }

  async function load() {
    const [status, described] = await Promise.all([getJSON("/_local/status"), getJSON("/_local/ops/alarms")]);
    renderQueues(status.queues || []);
    renderAlarms(described.alarms || status.alarms || []);
    renderNotifications(status.notifications || []);
  }

  refreshEvery(2000, load, $("console-updated"));
})();
