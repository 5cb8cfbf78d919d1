// Patient pages and the patient panel: copy an email address, keep the patient's local clock current.
// Delegated listeners, so panels swapped in by HTMX work without re-binding. No inline scripts.
"use strict";

(function () {
  const FEEDBACK_MS = 2000;

  function copyWithSelection(text) {
    // Fallback for browsers or contexts without the asynchronous Clipboard API.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (_error) {
      copied = false;
    }
    area.remove();
    return copied;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (_error) {
        // Permission refused: try the selection-based fallback below.
      }
    }
    return copyWithSelection(text);
  }

  function showFeedback(button, ok) {
    const label = button.querySelector("[data-copy-label]");
    if (!label) return;
    if (!button.dataset.copyIdle) button.dataset.copyIdle = label.textContent;
    clearTimeout(Number(button.dataset.copyTimer || 0));
    label.textContent = ok ? "Copied" : "Copy failed";
    button.classList.toggle("is-copied", ok);
    button.classList.toggle("is-failed", !ok);
    button.dataset.copyTimer = String(
      setTimeout(function () {
        label.textContent = button.dataset.copyIdle;
        button.classList.remove("is-copied", "is-failed");
      }, FEEDBACK_MS)
    );
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    event.preventDefault();
    showFeedback(button, await copyText(button.dataset.copy));
  });

  // The patient's current local time, ticking in their time zone (the server renders the first value).
  const formatters = new Map();

  function formatterFor(zone) {
    if (!formatters.has(zone)) {
      try {
        formatters.set(zone, new Intl.DateTimeFormat("en-US", { timeZone: zone, hour: "numeric", minute: "2-digit" }));
      } catch (_error) {
        formatters.set(zone, null);
      }
    }
    return formatters.get(zone);
  }

  function tickClocks() {
    const now = new Date();
    document.querySelectorAll("[data-local-clock]").forEach(function (clock) {
      const formatter = formatterFor(clock.dataset.timeZone);
      const target = clock.querySelector("[data-clock-time]");
      if (!formatter || !target) return;
      target.textContent = formatter.format(now);
      target.setAttribute("datetime", now.toISOString());
    });
  }

  setInterval(tickClocks, 30 * 1000);
})();
