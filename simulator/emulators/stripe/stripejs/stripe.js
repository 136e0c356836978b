/* Local stand-in for Stripe.js v3 (https://js.stripe.com/v3/), served by the Stripe emulator at /v3/.
 *
 * It implements only the documented calls the donation form makes, each as its reference page says:
 *   Stripe(publishableKey)                          docs.stripe.com/js/initializing
 *   stripe.elements({mode, amount, currency, paymentMethodCreation, paymentMethodTypes, setupFutureUsage})
 *                                                   docs.stripe.com/js/elements_object/create_without_intent
 *   elements.update(options)                        docs.stripe.com/js/elements_object/update
 *   elements.create("payment", options)             docs.stripe.com/js/elements_object/create_payment_element
 *   element.mount / on / focus / destroy            docs.stripe.com/js/element/mount, /js/element/events
 *   elements.submit()                               docs.stripe.com/js/elements/submit
 *   stripe.createPaymentMethod({elements, params})  docs.stripe.com/js/payment_methods/create_payment_method_elements
 *   stripe.handleNextAction({clientSecret})         docs.stripe.com/js/payment_intents/handle_next_action
 *   stripe.confirmCardSetup(clientSecret, {payment_method: "pm_..."})
 *                                                   docs.stripe.com/js/setup_intents/confirm_card_setup
 * As in Stripe.js, card details are typed into a frame of the provider's origin (here the emulator's),
 * which creates the PaymentMethod itself (POST /v1/payment_methods with the publishable key): the page
 * never sees a card number. 3-D Secure opens a challenge frame in a modal. Imitated, not Stripe's:
 * wallets (Apple Pay, Google Pay, Link), appearance, other payment method types, fraud signals.
 */
"use strict";

(() => {
  const origin = new URL(document.currentScript.src).origin;
  let frames = 0;

  /** A frame of the emulator's origin and the request/answer messages exchanged with it. */
  function channel(src, title) {
    const id = `stripe-stand-in-${(frames += 1)}`;
    const frame = document.createElement("iframe");
    frame.src = `${origin}${src}#${id}`;
    frame.title = title;
    frame.name = id;
    frame.setAttribute("allowtransparency", "true");
    frame.style.cssText = "border:0;width:100%;display:block;background:transparent";
    const waiting = new Map();
    const listeners = {};
    let asked = 0;
    const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
    window.addEventListener("message", (event) => {
      const data = event.data || {};
      if (event.origin !== origin || data.channel !== id) return;
      if (data.event === "resize") frame.style.height = `${data.height}px`;
      if (data.event) (listeners[data.event] || []).forEach((handler) => handler(data.payload));
      if (data.reply && waiting.has(data.reply)) {
        waiting.get(data.reply)(data.result);
        waiting.delete(data.reply);
      }
    });
    async function ask(type, payload) {
      await loaded;
      asked += 1;
      const reply = `${id}-${asked}`;
      return new Promise((resolve) => {
        waiting.set(reply, resolve);
        frame.contentWindow.postMessage({ channel: id, reply, type, payload }, origin);
      });
    }
    const on = (event, handler) => (listeners[event] = [...(listeners[event] || []), handler]);
    return { frame, ask, on, loaded };
  }

  function Stripe(publishableKey) {
    if (typeof publishableKey !== "string" || !publishableKey.startsWith("pk_")) {
      throw new Error("Stripe(): a publishable key (pk_...) is required.");
    }

    function elements(options) {
      let settings = { ...options };
      let payment = null;
      return {
        create(type, elementOptions) {
          if (type !== "payment") throw new Error(`The Stripe.js stand-in has only the Payment Element, not ${type}.`);
          const { frame, ask, on, loaded } = channel("/v3/elements/payment", "Secure payment input frame");
          const element = {
            mount(target) {
              const host = typeof target === "string" ? document.querySelector(target) : target;
              host.append(frame);
              loaded.then(() => ask("init", { key: publishableKey, settings, options: elementOptions || {} }));
              return element;
            },
            on(event, handler) {
              on(event, handler);
              return element;
            },
            focus: () => ask("focus"),
            update: (changes) => ask("options", changes),
            unmount: () => frame.remove(),
            destroy: () => frame.remove(),
            ask,
          };
          payment = element;
          return element;
        },
        getElement: (type) => (type === "payment" ? payment : null),
        async update(changes) {
          settings = { ...settings, ...changes };
          if (payment) await payment.ask("settings", settings);
        },
        async submit() {
          if (!payment) return { error: { type: "validation_error", message: "No Payment Element is mounted." } };
          return payment.ask("submit");
        },
        _payment: () => payment,
      };
    }

    async function createPaymentMethod(request) {
      const payment = request && request.elements && request.elements._payment();
      if (!payment) throw new Error("createPaymentMethod: pass the {elements} the Payment Element was created from.");
      return payment.ask("create", (request && request.params) || {});
    }

    /** The challenge frame in a modal dialog; resolves {paymentIntent} or {error}, as Stripe.js does. */
    async function handleNextAction(request) {
      return challenge(request && request.clientSecret);
    }

    /** Confirm a SetupIntent with an existing PaymentMethod (its id, as the reference allows), then the bank's
     * challenge if it asks for one; resolves {setupIntent} or {error}, as Stripe.js does. The confirm is posted
     * from the challenge frame (the emulator's origin, as Stripe.js posts to Stripe's from its own frames). */
    async function confirmCardSetup(clientSecret, data) {
      const paymentMethod = data && data.payment_method;
      if (typeof paymentMethod !== "string") {
        throw new Error("The Stripe.js stand-in's confirmCardSetup takes {payment_method: 'pm_...'} (no Card Element).");
      }
      return challenge(clientSecret, "confirmSetup", paymentMethod);
    }

    async function challenge(clientSecret, type = "authorize", paymentMethod = undefined) {
      const overlay = document.createElement("div");
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-modal", "true");
      overlay.setAttribute("aria-label", "3-D Secure authentication");
      overlay.style.cssText =
        "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.5);display:flex;align-items:center;justify-content:center";
      const { frame, ask } = channel("/v3/authorize", "3-D Secure authentication challenge");
      frame.id = "stripe-challenge-frame";
      frame.style.cssText += ";max-width:420px;height:320px;background:#fff;border-radius:8px";
      overlay.append(frame);
      document.body.append(overlay);
      frame.addEventListener("load", () => frame.focus(), { once: true });
      try {
        return await ask(type, { key: publishableKey, clientSecret, paymentMethod });
      } finally {
        overlay.remove();
      }
    }

    return { elements, createPaymentMethod, handleNextAction, confirmCardSetup };
  }

  window.Stripe = Stripe;
})();
