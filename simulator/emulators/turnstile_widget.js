/* Local stand-in for Cloudflare Turnstile's widget script (api.js?render=explicit), served by
 * simulator/emulators/turnstile_emulator.py. It implements the explicit-rendering calls the donation form
 * uses ("Client-side rendering": turnstile.render(container, {sitekey, callback, "error-callback",
 * action}), turnstile.reset(id), turnstile.remove(id)) as one checkbox that asks the emulator for a
 * token. A local stand-in, not a challenge: only the real Turnstile tells people from bots. */
"use strict";

(() => {
  const script = document.currentScript;
  const origin = new URL(script.src).origin;
  const widgets = new Map();
  let next = 0;

  function render(container, options) {
    const element = typeof container === "string" ? document.querySelector(container) : container;
    const id = `cf-local-${(next += 1)}`;
    const box = document.createElement("label");
    box.className = "turnstile-local";
    box.dataset.widgetId = id;
    const check = document.createElement("input");
    check.type = "checkbox";
    check.id = id;
    const text = document.createElement("span");
    text.textContent = "Verify you are human (local Turnstile emulator)";
    box.append(check, text);
    element.append(box);
    widgets.set(id, { box, check, options, token: null });
    check.addEventListener("change", () => check.checked && solve(id));
    return id;
  }

  async function solve(id) {
    const widget = widgets.get(id);
    if (!widget) return;
    widget.check.disabled = true;
    try {
      const response = await fetch(`${origin}/_emulator/tokens`, {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ sitekey: widget.options.sitekey, action: widget.options.action, hostname: location.hostname }),
      });
      const answer = await response.json();
      if (!response.ok || !answer.token) throw new Error(answer.error || `HTTP ${response.status}`);
      widget.token = answer.token;
      widget.box.dataset.state = "solved";
      if (typeof widget.options.callback === "function") widget.options.callback(answer.token);
    } catch (error) {
      widget.box.dataset.state = "failed";
      widget.check.checked = false;
      widget.check.disabled = false;
      const failed = widget.options["error-callback"];
      if (typeof failed === "function") failed(String(error));
    }
  }

  function reset(id) {
    const widget = widgets.get(id);
    if (!widget) return;
    widget.token = null;
    widget.check.checked = false;
    widget.check.disabled = false;
    delete widget.box.dataset.state;
  }

  function remove(id) {
    const widget = widgets.get(id);
    if (widget) widget.box.remove();
    widgets.delete(id);
  }

  window.turnstile = { render, reset, remove, getResponse: (id) => (widgets.get(id) || {}).token || undefined };
  const onload = new URL(script.src).searchParams.get("onload");
  if (onload && typeof window[onload] === "function") window[onload]();
})();
