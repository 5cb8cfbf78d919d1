// Idle session timeout (adminportal.idle). The server decides when a session ends; this page asks it how long is
// left (GET /accounts/session/, which is not activity), warns a minute before the end with "Stay signed in", and at
// the end follows the server to the sign-in page. Using the page (a key, a click, a tap) counts as activity and is
// reported with the next check (a POST), so someone writing a long reply is not signed out while an unattended
// screen is. An htmx read no user event caused (a row refreshed after a push, the bell loading, a refetch after a
// reconnect) carries BACKGROUND_HEADER and is not activity either. No inline scripts; nothing here runs outside the
// signed-in Care Portal layout.
"use strict";

(function () {
  const STATUS_URL = "/accounts/session/";
  const WARN_SECONDS = 60;
  const RETRY_SECONDS = 30;
  const BACKGROUND_HEADER = "X-Idle-Background"; // adminportal.idle.BACKGROUND_HEADER
  let timer = null;
  let ticker = null;
  let deadline = 0; // Date.now() at which the server will sign out, while the warning shows
  let interacted = false;
  let banner = null;
  let asked = 0; // checks sent, and the latest one whose answer was applied: an older answer arriving late
  let applied = 0; // (requests overtake each other) must not undo what a newer one showed

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (_error) {
      return "";
    }
  }

  function schedule(seconds) {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => check(interacted), Math.max(1, seconds) * 1000);
  }

  async function check(active) {
    const ticket = ++asked;
    const headers = { "HX-Request": "true", "HX-Current-URL": window.location.href, Accept: "application/json" };
    const options = { credentials: "same-origin", headers: headers, cache: "no-store" };
    if (active) {
      options.method = "POST";
      headers["X-CSRFToken"] = csrfToken();
      interacted = false;
    }
    let response;
    let redirect = null;
    let data = null;
    try {
      response = await fetch(STATUS_URL, options);
      redirect = response.headers.get("HX-Redirect");
      if (!redirect && response.ok) data = await response.json();
    } catch (_error) {
      if (ticket === asked) schedule(RETRY_SECONDS); // offline for a moment: ask again
      return;
    }
    // Only after the last await: an older answer finishing late must not undo what a newer one showed.
    if (ticket < applied) return;
    applied = ticket;
    if (redirect) {
      window.location.assign(redirect); // signed out: the sign-in page says why
      return;
    }
    if (!response.ok) {
      schedule(RETRY_SECONDS);
      return;
    }
    if (data.remaining === null || data.remaining === undefined) {
      hide(); // no timeout (switched off): nothing to watch
      return;
    }
    if (data.remaining <= WARN_SECONDS) {
      show(data.remaining);
      schedule(data.remaining + 1);
    } else {
      hide();
      schedule(data.remaining - WARN_SECONDS);
    }
  }

  function render() {
    const seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    banner.querySelector("[data-idle-seconds]").textContent =
      seconds === 1 ? "1 second" : `${seconds} seconds`;
  }

  function show(seconds) {
    deadline = Date.now() + seconds * 1000;
    if (!banner) {
      banner = document.createElement("div");
      banner.className = "idle-warning";
      banner.setAttribute("role", "alert");
      banner.dataset.testid = "idle-warning";
      const text = document.createElement("span");
      text.className = "idle-warning-text";
      text.append("For your security you will be signed out in ");
      const strong = document.createElement("strong");
      strong.dataset.idleSeconds = "";
      text.append(strong, " without activity.");
      const stay = document.createElement("button");
      stay.type = "button";
      stay.className = "btn btn-primary btn-sm";
      stay.textContent = "Stay signed in";
      stay.addEventListener("click", () => check(true));
      banner.append(text, stay);
      document.body.append(banner);
    }
    banner.hidden = false;
    render();
    window.clearInterval(ticker);
    ticker = window.setInterval(render, 1000);
  }

  function hide() {
    window.clearInterval(ticker);
    if (banner) banner.hidden = true;
  }

  function noteActivity() {
    interacted = true;
    if (banner && !banner.hidden) check(true); // using the page while warned keeps the session
  }

  function start() {
    if (!document.querySelector(".shell")) return; // the sign-in page and patient pages have no session to keep
    document.addEventListener("keydown", noteActivity, { passive: true });
    document.addEventListener("pointerdown", noteActivity, { passive: true });
    // A request caused by the user (a trusted click, key or change) is theirs; anything else the page does by itself.
    document.body.addEventListener("htmx:configRequest", (event) => {
      const cause = event.detail.triggeringEvent;
      if (!(cause && cause.isTrusted)) event.detail.headers[BACKGROUND_HEADER] = "true";
    });
    // The user's own htmx request is activity on the server: a warning that shows is out of date.
    document.body.addEventListener("htmx:afterRequest", (event) => {
      const config = event.detail.requestConfig;
      const background = config && config.headers && config.headers[BACKGROUND_HEADER] === "true";
      const path = event.detail.pathInfo && event.detail.pathInfo.requestPath;
      if (banner && !banner.hidden && !background && path !== STATUS_URL) check(false);
    });
    // Timers stop while a laptop sleeps or a tab is in the background: ask again as soon as it is seen.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") check(false);
    });
    check(false);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
