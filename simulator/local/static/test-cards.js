/* Local only (not part of the form's bundle): lists Stripe's test cards beside the Payment Element. */
"use strict";

(async () => {
  const box = document.getElementById("test-cards");
  const response = await fetch("/_local/config", { headers: { Accept: "application/json" } });
  const config = response.ok ? await response.json() : {};
  const cards = (config.test_payment_methods || []).filter((card) => card.number);
  box.querySelector("tbody").replaceChildren(...cards.map((card) => {
    const row = document.createElement("tr");
    const number = document.createElement("td");
    number.className = "mono";
    number.textContent = card.number.replace(/(\d{4})(?=\d)/g, "$1 ");
    const label = document.createElement("td");
    label.textContent = card.label;
    row.append(number, label);
    return row;
  }));
  box.hidden = cards.length === 0;
})();
