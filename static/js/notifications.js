// The notification bell: Escape closes its dropdown, and optional desktop notifications (opt-in, the browser's
// Notification API) for notifications pushed over the WebSocket. The server fills #bell-alert with the kind and the
// link only, so no patient details ever reach a lock screen.
"use strict";

(function () {
  const supported = "Notification" in window;
  let lastAlert = null;

  function refreshButtons() {
    document.querySelectorAll("[data-desktop-notifications]").forEach((button) => {
      if (!supported || Notification.permission === "denied") {
        button.hidden = true;
        return;
      }
      const granted = Notification.permission === "granted";
      button.hidden = false;
      button.disabled = granted;
      button.setAttribute("aria-pressed", granted ? "true" : "false");
      const label = button.querySelector("[data-desktop-label]");
      if (label) label.textContent = granted ? "Desktop alerts on" : "Turn on desktop alerts";
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-desktop-notifications]");
    if (!button || !supported) return;
    Promise.resolve(Notification.requestPermission()).then(refreshButtons);
  });

  document.addEventListener("DOMContentLoaded", refreshButtons);
  document.addEventListener("htmx:load", refreshButtons);

  // A push that brought a new notification: say so on the desktop, when the user allowed it.
  document.addEventListener("htmx:wsAfterMessage", () => {
    const alert = document.getElementById("bell-alert");
    const id = alert && alert.dataset.notificationId;
    if (!id || id === lastAlert) return;
    lastAlert = id;
    if (!supported || Notification.permission !== "granted") return;
    const desktop = new Notification(alert.dataset.title || "Care Inbox", {
      body: "Open Care Inbox to see it.",
      tag: `care-inbox-${id}`,
    });
    const url = alert.dataset.url;
    desktop.addEventListener("click", () => {
      window.focus();
      if (url) window.location.assign(url);
      desktop.close();
    });
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !(event.target instanceof Element)) return;
    const menu = event.target.closest("details[data-bell-menu][open]");
    if (!menu) return;
    menu.open = false;
    menu.querySelector("summary").focus();
    event.preventDefault();
  });
})();
