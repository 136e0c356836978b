/* Shared helpers of the local sample pages (no framework, no build step). */
"use strict";

const App = (() => {
  /** Build an element: h("td", {className: "num", dataset: {x: "1"}}, "text", childNode). Text is never parsed as HTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "className" || key === "textContent" || key === "title") el[key] = value;
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** GET a JSON document; throws on a non-2xx answer. */
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return response.json();
  }

  const CURRENCY_SYMBOLS = { usd: "$", eur: "€", gbp: "£", cad: "CA$", aud: "A$" };

  /** 2500, "usd" -> "$25.00". */
  function formatMoney(minor, currency) {
    const code = String(currency || "usd").toUpperCase();
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: code }).format(minor / 100);
    } catch (_) {
      return `${(minor / 100).toFixed(2)} ${code}`;
    }
  }

  /** A unix timestamp (seconds) or an ISO string -> a short local date and time. */
  function formatTime(value) {
    if (value === undefined || value === null || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toLocaleString(undefined, {
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
  }

  /** "x seconds ago" for a unix timestamp or an ISO string. */
  function ago(value) {
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    const seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (Number.isNaN(seconds)) return "";
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    return `${Math.floor(seconds / 3600)} h ago`;
  }

  /**
   * Call `load` now and then every `intervalMs` after each call ends (never overlapping).
   * `statusEl` shows when the data was last refreshed, or that the stack cannot be reached.
   */
  function refreshEvery(intervalMs, load, statusEl) {
    let timer = null;
    async function run() {
      try {
        await load();
        if (statusEl) {
          statusEl.textContent = `Updated ${new Date().toLocaleTimeString()}`;
          statusEl.dataset.stale = "false";
        }
      } catch (error) {
        if (statusEl) {
          statusEl.textContent = "Cannot reach the local stack; retrying…";
          statusEl.dataset.stale = "true";
        }
        console.warn(error);
      } finally {
        timer = setTimeout(run, intervalMs);
      }
    }
    run();
    return () => clearTimeout(timer);
  }

  /** Replace the rows of a table body (unless they are the same), or show one "empty" row spanning every column. */
  function fillRows(tbody, rows, emptyText) {
    const columns = tbody.closest("table").querySelectorAll("thead th").length || 1;
    const next = rows.length ? rows : [h("tr", {}, h("td", { className: "empty", colspan: columns }, emptyText))];
    // Keep the rows an operator may be reading or about to click when a refresh brings the same ones
    const unchanged = next.length === tbody.rows.length && next.every((row, i) => row.isEqualNode(tbody.rows[i]));
    if (!unchanged) tbody.replaceChildren(...next);
  }

  return { h, getJSON, formatMoney, formatTime, ago, refreshEvery, fillRows, CURRENCY_SYMBOLS };
})();
