// Real time on every Care Portal page, on top of the htmx ws extension (<div class="shell" ws-connect>): the
// server pushes HTML partials marked hx-swap-oob and htmx swaps them; this file only says what the page shows
// (subscribe), notices a dead socket (heartbeat without an answer), shows a discreet "Reconnecting…" banner while
// the socket is down, and re-fetches over HTTP what the page shows once it is back (the database is the truth).
// No inline scripts or handlers anywhere.
"use strict";

(function () {
  const CLOSE_SIGNED_OUT = 4401;
  const CLOSE_NOT_ALLOWED = 4403;
  const EXTENSION_RETRIES = [1006, 1011, 1012, 1013]; // closes after which the ws extension reconnects by itself

  const qsa = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const liveRoot = () => document.querySelector("[data-live]");

  let socket = null; // the current WebSocket
  let wrapper = null; // the extension's socket wrapper (send, reconnect, queue)
  let everOpened = false;
  let leaving = false;
  let pongTimer = null;
  let subscribeTimer = null;

  // Reconnect soon after a network cut (the extension's default backoff grows to a minute): 0.5–1 s, 1–2 s, 2–4 s,
  // then every 4–8 s.
  htmx.config.wsReconnectDelay = (retry) => Math.min(1000 * 2 ** Math.min(retry, 3), 8000) * (0.5 + Math.random() / 2);

  // The extension creates sockets through htmx.createWebSocket; keep a handle on the current one.
  htmx.createWebSocket = function (url) {
    socket = new WebSocket(url, []);
    socket.binaryType = htmx.config.wsBinaryType;
    return socket;
  };

  function heartbeatMs() {
    const root = liveRoot();
    return 1000 * Number((root && root.dataset.heartbeatSeconds) || 10);
  }

  // --- The banner ---------------------------------------------------------------------------------------------

  function showStatus(text) {
    const banner = document.getElementById("live-status");
    if (!banner) return;
    banner.querySelector("[data-live-text]").textContent = text;
    banner.hidden = false;
    document.body.classList.add("is-live-down");
  }

  function hideStatus() {
    const banner = document.getElementById("live-status");
    if (banner) banner.hidden = true;
    document.body.classList.remove("is-live-down");
  }

  // --- What the page shows ------------------------------------------------------------------------------------

  function subscribe() {
    clearTimeout(subscribeTimer);
    subscribeTimer = setTimeout(() => {
      const element = document.getElementById("live-subscribe");
      if (element && socket && socket.readyState === WebSocket.OPEN) htmx.trigger(element, "live:subscribe");
    }, 25);
  }

  // The ws extension registers a ws-send element's trigger once per htmx pass over it (the page's and its own),
  // so one trigger can ask for two identical sends: let the first through.
  const lastSend = new WeakMap();
  document.addEventListener("htmx:wsConfigSend", (event) => {
    const now = performance.now();
    if (now - (lastSend.get(event.target) ?? -Infinity) < 100) event.preventDefault();
    else lastSend.set(event.target, now);
  });

  // The subscription carries the page address (HX-Current-URL, added by the extension), the rows on screen, the
  // open conversation and the newest message it shows. The server checks every id against the access rule.
  document.addEventListener("htmx:wsConfigSend", (event) => {
    if (!(event.target instanceof Element) || event.target.id !== "live-subscribe") return;
    const parameters = event.detail.parameters;
    parameters.rows = qsa("#inbox-rows [data-row]")
      .map((row) => row.dataset.communicationId)
      .join(",");
    const conversation = document.querySelector("#conversation-pane [data-conversation]");
    parameters.open = conversation ? conversation.dataset.communicationId : "";
    const seen = document.getElementById("seen-message-id");
    parameters.last_message_id = conversation && seen ? seen.value : "";
    // A draft in the box: the user is still replying there (a reconnected tab says so again).
    const replyForm = conversation && document.getElementById("reply-form");
    parameters.drafting = replyForm && draftOf(replyForm) ? "1" : "";
    const marker = document.getElementById("inbox-incoming");
    parameters.listed_at = marker ? marker.dataset.listedAt : ""; // changes since then are brought by the server
    const nav = document.getElementById("folder-nav");
    parameters.counts = (nav && nav.dataset.counts) || ""; // the counts shown: the server pushes only others
  });

  document.addEventListener("htmx:pushedIntoHistory", subscribe);
  document.addEventListener("htmx:replacedInHistory", subscribe);
  document.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail && event.detail.target;
    // A swap of the list (folder, filters), its rows ("Load more") or the conversation changes what the page shows.
    if (
      target instanceof Element &&
      target.matches("#inbox-list, #inbox-rows, .rows-more, #conversation-pane, #folder-nav")
    ) {
      subscribe();
    }
  });

  // --- The socket's life --------------------------------------------------------------------------------------

  // A push and the answer to the user's own request can race (a status change comes back both ways). htmx swaps an
  // answer into the request's target and looks for its out-of-band parts from the requesting element: if a push
  // replaced either meanwhile, the answer would land in a detached copy. So while such a request is out, a push
  // leaves the header and the status switch alone — the answer, rendered after the change, brings them.
  const GUARDED = ["conversation-header", "reply-status"];
  const awaited = new Set();
  document.addEventListener("htmx:beforeRequest", (event) => {
    const { elt, target, xhr } = event.detail;
    if (!xhr) return;
    const elements = [elt, target].filter((element) => element instanceof Element);
    elements.forEach((element) => awaited.add(element));
    xhr.addEventListener("loadend", () => elements.forEach((element) => awaited.delete(element)));
  });
  let applyingPush = false; // a pushed message is swapped synchronously between these two events
  document.addEventListener("htmx:wsBeforeMessage", () => {
    applyingPush = true;
  });

  function refetch() {
    // Everything the page shows, from the database: rows and counts (the filter form's own request), the open
    // conversation's header (with the status switch) and messages. The reply box and its draft stay as they are.
    const filters = document.getElementById("filters");
    if (filters) htmx.trigger(filters, "submit");
    qsa("[data-live-refresh]").forEach((element) => {
      htmx.ajax("GET", element.dataset.liveRefresh, { target: element, swap: "outerHTML" });
    });
  }

  document.addEventListener("htmx:wsOpen", (event) => {
    wrapper = event.detail.socketWrapper;
    // Heartbeats and typing queued while the socket was down are stale: drop them before the queue is flushed.
    wrapper.queue.splice(0);
    hideStatus();
    if (everOpened) refetch();
    everOpened = true;
    subscribe();
    // The server answers a heartbeat only once the socket has joined the user's groups: the first answer marks the
    // page live (data-live-ready), which is what a caller waiting for pushes can wait on.
    wrapper.send(JSON.stringify({ type: "heartbeat" }));
  });

  document.addEventListener("htmx:wsClose", (event) => {
    heard();
    const root = liveRoot();
    if (root) root.removeAttribute("data-live-ready");
    if (leaving) return;
    const code = event.detail.event.code;
    if (code === CLOSE_SIGNED_OUT || code === CLOSE_NOT_ALLOWED) {
      showStatus("You are signed out. Reload the page to sign in again.");
      return;
    }
    showStatus("Reconnecting…");
    if (!EXTENSION_RETRIES.includes(code) && wrapper) {
      // A clean close (a server restart) is not retried by the extension: reconnect ourselves.
      const again = wrapper;
      setTimeout(() => again.reconnect(), htmx.config.wsReconnectDelay(0));
    }
  });

  // A socket can die silently (the network drops, a laptop sleeps): the server answers every heartbeat, and a
  // heartbeat left unanswered means the socket is dead — say so, and open a new one.
  document.addEventListener("htmx:wsAfterSend", (event) => {
    if (!(event.target instanceof Element) || event.target.id !== "live-heartbeat") return;
    // Counted from the first heartbeat left unanswered (later ones do not restart the count). Generous: a busy
    // server answers late, and a false alarm costs a reconnect.
    if (pongTimer === null) pongTimer = setTimeout(replaceDeadSocket, Math.max(4000, heartbeatMs()));
  });

  function heard() {
    clearTimeout(pongTimer);
    pongTimer = null;
  }

  document.addEventListener("htmx:wsAfterMessage", () => {
    applyingPush = false;
    heard();
    const root = liveRoot();
    if (root && !root.hasAttribute("data-live-ready")) root.setAttribute("data-live-ready", "");
  });

  function replaceDeadSocket() {
    pongTimer = null;
    if (!wrapper || !socket) return;
    const dead = socket;
    dead.onopen = dead.onclose = dead.onerror = null; // its late close must not start another reconnect
    showStatus("Reconnecting…");
    wrapper.reconnect(); // closes the dead socket and opens a new one (retried with backoff while offline)
  }

  window.addEventListener("beforeunload", () => {
    leaving = true;
  });
  window.addEventListener("pageshow", () => {
    leaving = false;
  });

  // --- Pushed messages ----------------------------------------------------------------------------------------

  let stickToBottom = false;

  // A message can arrive twice (the reply's own response and the push of it): keep the first copy, and one day
  // divider per day.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const { target, fragment } = event.detail;
    if (!(target instanceof Element)) return;
    if (applyingPush && GUARDED.includes(target.id) && [...awaited].some((element) => target.contains(element))) {
      event.detail.shouldSwap = false;
      return;
    }
    // Only appends (beforeend) carry new messages; a whole list replacing #messages (an inline swap) is kept as is.
    if (target.id !== "messages" || !fragment || fragment instanceof DocumentFragment) return;
    stickToBottom = target.scrollHeight - target.scrollTop - target.clientHeight < 80;
    Array.from(fragment.children || []).forEach((child) => {
      const duplicate = child.id
        ? document.getElementById(child.id)
        : child.dataset.day && target.querySelector(`.day-divider[data-day="${child.dataset.day}"]`);
      if (duplicate) child.remove();
    });
    const empty = target.querySelector(".messages-empty");
    if (empty) empty.remove();
  });

  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const target = event.detail && event.detail.target;
    if (target instanceof Element && target.id === "messages" && stickToBottom) target.scrollTop = target.scrollHeight;
    if (target instanceof Element && target.id === "inbox-incoming") placeRows(target);
  });

  // --- Pushed rows --------------------------------------------------------------------------------------------

  // A pushed row lands in the hidden #inbox-incoming, wrapped with the list it was rendered for. It goes to its place
  // in the list by its sort key (newest first), replacing its older copy, whatever else has or has not arrived yet.
  // A row for another list (the page moved on meanwhile) is dropped, and so is a new one that sorts below the rows
  // loaded so far while "Load more" can still bring it.
  function placeRows(incoming) {
    const list = document.getElementById("inbox-rows");
    Array.from(incoming.children).forEach((wrapper) => {
      wrapper.remove();
      // "… is replying" markers go into their rows (the list is the user's whatever its folder); a row no longer
      // on the page drops its marker.
      if (wrapper.hasAttribute("data-markers")) {
        Array.from(wrapper.children).forEach((marker) => {
          const old = marker.id && document.getElementById(marker.id);
          if (old && old.closest("#inbox-rows")) old.replaceWith(marker);
        });
        return;
      }
      const row = wrapper.querySelector("[data-row]");
      if (list && row && wrapper.dataset.list === incoming.dataset.list) placeRow(list, row);
    });
  }

  function placeRow(list, row) {
    const rows = qsa(":scope > [data-row]", list);
    const old = rows.find((element) => element.id === row.id);
    const next = rows.find((element) => element !== old && element.dataset.sort < row.dataset.sort);
    if (next) {
      list.insertBefore(row, next);
      if (old) old.remove();
    } else if (old) {
      old.replaceWith(row); // already the last row loaded
    } else if (!list.querySelector(":scope > .rows-more")) {
      const last = rows[rows.length - 1];
      list.insertBefore(row, last ? last.nextSibling : list.firstChild);
    } else {
      return; // below what is loaded: "Load more" brings it
    }
    const empty = document.getElementById("rows-empty");
    if (empty) empty.remove();
  }

  // --- Collision guard ----------------------------------------------------------------------------------------

  // The reply form tells the server what the writer saw: the newest message (#seen-message-id) and the status and
  // assignee (the header's hidden inputs). Pushes keep those current, which is right while the box is empty. Once a
  // draft is begun, the form sends what was current when it was begun: a colleague's reply that appears while one
  // writes has not been read, whatever the screen shows, and the server holds the send with what changed. The
  // baseline moves on when the box is emptied, and once the writer has been shown the changes (the 409 warning).
  const SEEN_FIELDS = ["seen_message_id", "seen_status", "seen_assignee"];
  let baseline = null; // { form, values } for the draft in the page's reply form

  function seenNow() {
    const values = {};
    SEEN_FIELDS.forEach((name) => {
      const input = document.querySelector(`input[name="${name}"][form="reply-form"]`);
      if (input) values[name] = input.value;
    });
    return values;
  }

  function draftOf(form) {
    const editor = form.querySelector("[data-editor]");
    if (!editor) return "";
    return (editor.matches("textarea, input") ? editor.value : editor.textContent).trim();
  }

  document.addEventListener("input", (event) => {
    const form = event.target instanceof Element && event.target.closest("#reply-form");
    if (!form) return;
    if (!draftOf(form)) {
      // Emptied (it held a draft): "typing…" ends for the others at once.
      if (baseline) htmx.trigger(document.body, "reply:emptied");
      baseline = null;
    } else if (!baseline || baseline.form !== form) baseline = { form, values: seenNow() };
  });

  document.addEventListener("htmx:configRequest", (event) => {
    const form = event.detail.elt;
    if (!(form instanceof Element) || form.id !== "reply-form" || !baseline || baseline.form !== form) return;
    Object.entries(baseline.values).forEach(([name, value]) => {
      event.detail.parameters[name] = value;
    });
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!(form instanceof Element) || form.id !== "reply-form" || !event.detail.xhr) return;
    // Shown what changed (409): from now on the writer has seen it. Sent: a new box, a new draft.
    if (event.detail.xhr.status === 409) baseline = { form, values: seenNow() };
    // Asked to confirm the recipient of a reply to an unlinked sender: nothing was sent, the draft goes on.
    else if (event.detail.xhr.getResponseHeader("HX-Retarget") === "#reply-collision") return;
    else if (event.detail.successful) baseline = null;
  });

  document.addEventListener("click", (event) => {
    if (!event.target.closest("[data-dismiss-collision]")) return;
    const warning = document.getElementById("reply-collision");
    if (!warning) return;
    const empty = document.createElement("div");
    empty.id = "reply-collision";
    warning.replaceWith(empty); // the "Send anyway" override goes with it; the draft stays
    const editor = document.querySelector("#reply-box [data-editor]");
    if (editor) editor.focus();
  });
})();
