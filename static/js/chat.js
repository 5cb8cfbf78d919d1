// The patient's live chat page: one WebSocket to /ws/chat/<token>/ (careportal/consumers_chat.py).
// Everything shown is HTML rendered by the server; this file only places it. A message is kept here until the
// server acknowledges it is stored, and sent again with the same id after a reconnect (the server dedupes), so
// nothing typed is lost. Without a socket the form posts normally.
(function () {
  "use strict";

  const root = document.querySelector("[data-chat]");
  if (!root || !("WebSocket" in window)) return;

  const list = root.querySelector("[data-chat-messages]");
  const form = root.querySelector("[data-chat-form]");
  const textarea = root.querySelector("[data-chat-text]");
  const sendButton = root.querySelector("[data-chat-send]");
  const typing = root.querySelector("[data-chat-typing]");
  const typingText = root.querySelector("[data-chat-typing-text]");
  const connection = root.querySelector("[data-chat-connection]");
  const connectionText = root.querySelector("[data-chat-connection-text]");
  const errorBox = root.querySelector("[data-chat-error]");
  const errorText = root.querySelector("[data-chat-error-text]");

  const TYPING_SHOWN_MS = 6000;
  const NOT_ALLOWED = 4403;
  const RETRY_MS = 3000;
  const unacked = new Map(); // client id -> text, until the server says it is stored
  let socket = null;
  let retryDelay = 1000;
  let typingTimer = null;
  let ended = false;

  function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function setConnection(state, text) {
    connection.dataset.state = state;
    connectionText.textContent = text;
  }

  function showError(text) {
    errorText.textContent = text || "";
    errorBox.hidden = !text;
  }

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  function lastId() {
    return parseInt(list.dataset.lastId || "0", 10) || 0;
  }

  // Place server-rendered <li> entries: a filed message replaces its "Sending…" bubble; nothing is shown twice.
  function place(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    Array.from(template.content.children).forEach((item) => {
      const messageId = item.dataset.messageId;
      const clientId = item.dataset.clientId;
      if (messageId && list.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`)) return;
      const pending = clientId ? list.querySelector(`.is-pending[data-client-id="${CSS.escape(clientId)}"]`) : null;
      if (!messageId && clientId && list.querySelector(`[data-client-id="${CSS.escape(clientId)}"]`)) return;
      if (pending) pending.replaceWith(item);
      else list.appendChild(item);
      if (messageId) list.dataset.lastId = String(Math.max(lastId(), parseInt(messageId, 10)));
    });
    const empty = list.querySelector("[data-chat-empty]");
    if (empty && list.querySelector(".chat-message")) empty.remove();
    scrollToEnd();
  }

  function hideTyping() {
    typing.hidden = true;
    clearTimeout(typingTimer);
  }

  function showTyping(html) {
    typingText.innerHTML = html;
    typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
  }

  function transmit(clientId, text) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "message", client_id: clientId, text: text }));
    }
  }

  function handle(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (data.type === "ack") {
      unacked.delete(data.client_id);
      showError("");
      if (data.html) place(data.html);
      sendButton.disabled = false;
    } else if (data.type === "messages") {
      place(data.html);
      hideTyping();
    } else if (data.type === "typing") {
      if (data.active) showTyping(data.html);
      else hideTyping();
    } else if (data.type === "error") {
      sendButton.disabled = false;
      const clientId = data.client_id;
      if (clientId && unacked.has(clientId) && data.retry) {
        // Not stored yet (the server could not reach its database): try again with the same id.
        setTimeout(() => unacked.has(clientId) && transmit(clientId, unacked.get(clientId)), RETRY_MS);
      } else if (clientId && unacked.has(clientId)) {
        if (!textarea.value) textarea.value = unacked.get(clientId);
        unacked.delete(clientId);
      }
      showError(data.text);
    }
  }

  function connect() {
    if (ended) return;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(`${scheme}${window.location.host}${root.dataset.wsPath}?after=${lastId()}`);
    socket.addEventListener("open", () => {
      retryDelay = 1000;
      setConnection("open", "Connected");
      unacked.forEach((text, clientId) => transmit(clientId, text)); // same id: stored once
    });
    socket.addEventListener("message", handle);
    socket.addEventListener("close", (event) => {
      socket = null;
      sendButton.disabled = false;
      if (event.code === NOT_ALLOWED) {
        ended = true;
        setConnection("ended", "Link expired");
        unacked.forEach((text) => {
          if (!textarea.value) textarea.value = text;
        });
        unacked.clear();
        showError("This chat link has expired. Please ask your care team for a new one.");
        textarea.disabled = true;
        sendButton.disabled = true;
        return;
      }
      setConnection("closed", "Reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    });
  }

  form.addEventListener("submit", (event) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) return; // no socket: the form posts to the server
    event.preventDefault();
    const text = textarea.value.trim();
    if (!text) return;
    const clientId = newId();
    unacked.set(clientId, text);
    showError("");
    sendButton.disabled = true;
    transmit(clientId, text);
    textarea.value = "";
    textarea.style.height = "";
    textarea.focus();
  });

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  textarea.addEventListener("input", () => {
    textarea.style.height = "";
    textarea.style.height = `${Math.min(textarea.scrollHeight + 2, 180)}px`;
  });

  scrollToEnd();
  connect();
})();
