// Internal notes in the reply box: the "Reply" / "Internal note" tabs (click, or arrow keys between them), and the
// @mention autocomplete of the note box. The options are a server-rendered partial (/inbox/c/<id>/mentions/?q=),
// already filtered by the access rule; this file only shows them, moves the selection and inserts "@username".
"use strict";

(function () {
  const TOKEN = /(?:^|[^\w@.])@([\w.+-]{0,30})$/;
  let focusNoteAfterSwap = false;

  // --- Tabs ---------------------------------------------------------------------------------------------------

  function tabsOf(tab) {
    const list = tab.closest("[data-reply-modes]");
    return list ? Array.from(list.querySelectorAll("[data-reply-mode]")) : [tab];
  }

  function select(tab, { focusTab = false, focusEditor = false } = {}) {
    tabsOf(tab).forEach((other) => {
      const on = other === tab;
      other.setAttribute("aria-selected", on ? "true" : "false");
      other.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    const area = tab.closest("[data-reply-area]");
    if (area) area.classList.toggle("is-note-mode", tab.dataset.replyMode === "note");
    if (focusTab) tab.focus();
    if (focusEditor) {
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      const editor = panel && panel.querySelector("textarea, [data-editor]");
      if (editor) editor.focus();
    }
  }

  document.addEventListener("click", (event) => {
    const tab = event.target.closest("[data-reply-mode]");
    if (tab) select(tab, { focusEditor: true });
  });

  document.addEventListener("keydown", (event) => {
    const tab = event.target instanceof Element ? event.target.closest("[data-reply-mode]") : null;
    if (!tab || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
    const tabs = tabsOf(tab);
    const index = tabs.indexOf(tab);
    const next = {
      ArrowLeft: tabs[(index - 1 + tabs.length) % tabs.length],
      ArrowRight: tabs[(index + 1) % tabs.length],
      Home: tabs[0],
      End: tabs[tabs.length - 1],
    }[event.key];
    event.preventDefault();
    select(next, { focusTab: true });
  });

  // A note posted: the fresh note box replaces the old one; keep typing there.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt instanceof Element && event.detail.elt.matches("[data-note-form]")) focusNoteAfterSwap = true;
  });
  document.addEventListener("htmx:afterSettle", () => {
    if (!focusNoteAfterSwap) return;
    focusNoteAfterSwap = false;
    const editor = document.querySelector("[data-note-panel]:not([hidden]) [data-mention-input]");
    if (editor) editor.focus();
  });

  // --- @mention autocomplete ----------------------------------------------------------------------------------

  const timers = new WeakMap();

  function listFor(input) {
    return document.getElementById(input.getAttribute("aria-controls"));
  }

  function tokenAt(input) {
    const match = input.value.slice(0, input.selectionStart).match(TOKEN);
    return match ? match[1] : null;
  }

  function hide(input) {
    const list = listFor(input);
    if (list) list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function options(list) {
    return Array.from(list.querySelectorAll("[role='option']"));
  }

  function highlight(input, option) {
    const list = listFor(input);
    options(list).forEach((other) => other.setAttribute("aria-selected", other === option ? "true" : "false"));
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    }
  }

  function lookUp(input) {
    const query = tokenAt(input);
    if (query === null) {
      hide(input);
      return;
    }
    const list = listFor(input);
    const url = `${input.dataset.mentionUrl}?q=${encodeURIComponent(query)}`;
    htmx.ajax("GET", url, { target: list, swap: "innerHTML" }).then(() => {
      if (tokenAt(input) === null) return hide(input);
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(input, options(list)[0] || null);
    });
  }

  function choose(input, option) {
    const caret = input.selectionStart;
    const before = input.value.slice(0, caret);
    const start = before.lastIndexOf("@");
    if (start < 0) return;
    const inserted = `@${option.dataset.mentionUsername} `;
    input.value = before.slice(0, start) + inserted + input.value.slice(caret);
    const position = start + inserted.length;
    input.setSelectionRange(position, position);
    hide(input);
    input.focus();
  }

  document.addEventListener("input", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLTextAreaElement) || !input.matches("[data-mention-input]")) return;
    clearTimeout(timers.get(input));
    timers.set(input, setTimeout(() => lookUp(input), 120));
  });

  // Capture phase: ahead of the Inbox shortcuts (Escape there would leave the box).
  document.addEventListener(
    "keydown",
    (event) => {
      const input = event.target;
      if (!(input instanceof HTMLTextAreaElement) || !input.matches("[data-mention-input]")) return;
      if (input.getAttribute("aria-expanded") !== "true") return;
      const list = listFor(input);
      const all = options(list);
      const current = all.findIndex((option) => option.getAttribute("aria-selected") === "true");
      if (event.key === "Escape") {
        hide(input);
      } else if (event.key === "ArrowDown" && all.length) {
        highlight(input, all[(current + 1) % all.length]);
      } else if (event.key === "ArrowUp" && all.length) {
        highlight(input, all[(current - 1 + all.length) % all.length]);
      } else if ((event.key === "Enter" || event.key === "Tab") && current >= 0) {
        choose(input, all[current]);
      } else {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
    },
    true,
  );

  // mousedown, not click: the textarea keeps the focus and its caret.
  document.addEventListener("mousedown", (event) => {
    const option = event.target.closest("[data-mention-list] [role='option']");
    if (!option) return;
    event.preventDefault();
    const list = option.closest("[data-mention-list]");
    const input = document.querySelector(`[aria-controls="${list.id}"]`);
    if (input) choose(input, option);
  });

  document.addEventListener("focusout", (event) => {
    const input = event.target;
    if (input instanceof HTMLTextAreaElement && input.matches("[data-mention-input]")) setTimeout(() => hide(input), 150);
  });
})();
