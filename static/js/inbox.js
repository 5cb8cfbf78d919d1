// Inbox page behaviour: keyboard shortcuts, dialogs, the reply box tools (formatting, emoji, templates,
// attachments, secure toggle), drafts kept across partial swaps, and refreshing rows and counts after a change.
// Listeners are delegated from the document, so partials swapped in by HTMX work without re-binding.
// No inline scripts or handlers anywhere (a strict Content-Security-Policy comes later).
"use strict";

(function () {
  const PANEL_KEY = "careInbox.patientPanel"; // "open" | "collapsed" — a layout preference, never patient data
  const PANEL_AUTO_COLLAPSE_BELOW = 1440;
  const SAFE_LINK = /^(https?:|mailto:|tel:)/i;

  // Reply drafts by communication id, in memory only: they survive partial swaps (opening another conversation and
  // coming back, linking) but never reach localStorage, so no patient data is left on the machine.
  const drafts = new Map();

  const qs = (selector, root) => (root || document).querySelector(selector);
  const qsa = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const onInboxPage = () => document.getElementById("inbox") !== null;

  // --- Rows ---------------------------------------------------------------------------------------------------

  function rowLinks() {
    return qsa("#inbox-rows [data-row] .row-link");
  }

  function markSelected(id) {
    qsa("#inbox-rows [data-row]").forEach((row) => {
      const selected = row.dataset.communicationId === String(id);
      row.classList.toggle("is-selected", selected);
      const link = row.querySelector(".row-link");
      if (selected) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  }

  function moveSelection(step) {
    const links = rowLinks();
    if (!links.length) return;
    let index = links.indexOf(document.activeElement);
    if (index === -1) index = links.findIndex((link) => link.closest("[data-row]").classList.contains("is-selected"));
    const next = index === -1 ? (step > 0 ? 0 : links.length - 1) : Math.min(Math.max(index + step, 0), links.length - 1);
    links[next].focus();
    links[next].scrollIntoView({ block: "nearest" });
  }

  function refreshRows(ids) {
    ids.forEach((id) => {
      const row = document.getElementById("row-" + id);
      if (row && row.dataset.rowUrl) htmx.ajax("GET", row.dataset.rowUrl, { target: row, swap: "outerHTML" });
    });
  }

  document.addEventListener("inbox:changed", (event) => refreshRows((event.detail && event.detail.ids) || []));
  // Another action changed which rows the list holds: fetch the list again for the same filters, without touching
  // the address bar (that action pushed its own URL, e.g. the conversation it opened).
  document.addEventListener("inbox:listchanged", () => {
    const filters = document.getElementById("filters");
    if (!filters) return;
    const query = new URLSearchParams(new FormData(filters));
    query.set("refresh", "1");
    const path = filters.getAttribute("hx-get").split("?")[0];
    htmx.ajax("GET", path + "?" + query.toString(), { target: "#inbox-rows", swap: "innerHTML" });
  });

  document.addEventListener("click", (event) => {
    const link = event.target.closest("#inbox-rows .row-link");
    if (link) markSelected(link.closest("[data-row]").dataset.communicationId);
  });

  // Status and channel filters: at least one stays on in each group ("all on" is the default, "none" means nothing).
  document.addEventListener(
    "click",
    (event) => {
      const box = event.target.closest(".chip-group input[type='checkbox']");
      if (!box || !box.checked) return;
      const group = box.closest(".chip-group");
      if (qsa("input[type='checkbox']:checked", group).length === 1) event.preventDefault();
    },
    true,
  );

  // --- Keyboard shortcuts -------------------------------------------------------------------------------------

  function isTyping(target) {
    return target instanceof Element && target.closest("input, textarea, select, [contenteditable='true']") !== null;
  }

  function focusReply() {
    const editor = qs("#reply-box [data-shortcut-target='reply']");
    if (editor) {
      editor.focus();
      if (editor.isContentEditable) placeCaretAtEnd(editor);
      return;
    }
    const link = qs("#reply-box .reply-blocked .btn");
    if (link) link.focus();
  }

  function toggleStatus() {
    const other = qs("#reply-status button[aria-pressed='false']");
    if (other) other.click();
  }

  function focusSearch() {
    const search = qs("[data-shortcut-target='search']");
    if (search) {
      search.focus();
      search.select();
    }
  }

  function showShortcuts() {
    const dialog = document.getElementById("shortcuts-dialog");
    if (dialog && !dialog.open) dialog.showModal();
  }

  function closeMenus(except) {
    qsa("details[data-menu][open]").forEach((menu) => {
      if (menu !== except) menu.open = false;
    });
  }

  document.addEventListener("keydown", (event) => {
    if (!onInboxPage() || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      const menu = event.target instanceof Element ? event.target.closest("details[data-menu][open]") : null;
      if (menu) {
        menu.open = false;
        menu.querySelector("summary").focus();
        event.preventDefault();
      } else if (isTyping(event.target) && event.target.closest("#inbox")) {
        event.target.blur(); // leave the reply box or the search box, so the shortcuts work again
      }
      return;
    }
    if (isTyping(event.target) || document.querySelector("dialog[open]")) return;
    const actions = {
      j: () => moveSelection(1),
      k: () => moveSelection(-1),
      r: focusReply,
      e: toggleStatus,
      a: () => qs("[data-shortcut='assign']") && qs("[data-shortcut='assign']").click(),
      "/": focusSearch,
      "?": showShortcuts,
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-open-shortcuts]")) showShortcuts();
  });

  // --- Dialogs and menus ------------------------------------------------------------------------------------

  // The control that asked for a dialog gets the focus back when the dialog closes.
  let dialogOpener = null; // set when a request for the dialog slot starts
  let lastOpener = null; // a dialog re-rendered after a refusal keeps its original opener
  const openers = new WeakMap();

  document.addEventListener("htmx:beforeRequest", (event) => {
    const target = event.detail.target;
    if (target && target.id === "dialog-slot") dialogOpener = event.detail.elt;
  });

  function openDialogs(root) {
    const dialogs = root.matches("dialog[data-modal]") ? [root] : qsa("dialog[data-modal]", root);
    dialogs.forEach((dialog) => {
      if (dialog.open || !dialog.isConnected) return;
      lastOpener = dialogOpener || (lastOpener && lastOpener.isConnected ? lastOpener : document.activeElement);
      openers.set(dialog, lastOpener);
      dialogOpener = null;
      dialog.showModal();
      const first = dialog.querySelector("[autofocus]") || dialog.querySelector(".modal-body button, .modal-body input");
      if (first) first.focus();
    });
  }

  // A closed dynamic dialog is removed, so the slot is empty for the next one.
  document.addEventListener(
    "close",
    (event) => {
      const dialog = event.target;
      if (!(dialog instanceof HTMLDialogElement) || !dialog.matches("[data-modal]")) return;
      const opener = openers.get(dialog);
      dialog.remove();
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
    },
    true,
  );

  document.addEventListener(
    "toggle",
    (event) => {
      const menu = event.target;
      if (menu instanceof HTMLDetailsElement && menu.matches("[data-menu]") && menu.open) closeMenus(menu);
    },
    true,
  );

  document.addEventListener("click", (event) => {
    if (!event.target.closest("details[data-menu]")) closeMenus(null);
  });

  // Filter a list of options as one types (the assignee list).
  document.addEventListener("input", (event) => {
    const input = event.target.closest("[data-filter-list]");
    if (!input) return;
    const term = input.value.trim().toLowerCase();
    qsa(input.dataset.filterList + " > li").forEach((item) => {
      item.hidden = term !== "" && !(item.dataset.filterText || "").includes(term);
    });
  });

  // --- Patient panel ------------------------------------------------------------------------------------------

  function storedPanel() {
    try {
      return window.localStorage.getItem(PANEL_KEY);
    } catch (_error) {
      return null;
    }
  }

  function applyPanel() {
    const inbox = document.getElementById("inbox");
    if (!inbox) return;
    const saved = storedPanel();
    const collapsed = saved === null ? window.innerWidth < PANEL_AUTO_COLLAPSE_BELOW : saved === "collapsed";
    inbox.classList.toggle("is-panel-collapsed", collapsed);
    qsa("[data-toggle-panel]").forEach((button) => button.setAttribute("aria-expanded", String(!collapsed)));
  }

  document.addEventListener("click", (event) => {
    if (!event.target.closest("[data-toggle-panel]")) return;
    const inbox = document.getElementById("inbox");
    const collapsed = !inbox.classList.contains("is-panel-collapsed");
    try {
      window.localStorage.setItem(PANEL_KEY, collapsed ? "collapsed" : "open");
    } catch (_error) {
      // Storage unavailable: the toggle still works for this page.
    }
    applyPanel();
  });

  // --- Reply box: editor, drafts ------------------------------------------------------------------------------

  let savedRange = null;

  function replyBox(element) {
    return element.closest("[data-reply-box]");
  }

  function editorOf(box) {
    return box ? box.querySelector("[data-editor]") : null;
  }

  function placeCaretAtEnd(editor) {
    const range = document.createRange();
    range.selectNodeContents(editor);
    range.collapse(false);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function rememberRange() {
    const selection = window.getSelection();
    if (!selection.rangeCount) return;
    const range = selection.getRangeAt(0);
    let node = range.commonAncestorContainer;
    if (node.nodeType !== Node.ELEMENT_NODE) node = node.parentElement;
    if (node && node.closest("[data-editor][contenteditable]")) savedRange = range.cloneRange();
  }

  function restoreRange(editor) {
    editor.focus();
    if (savedRange && editor.contains(savedRange.commonAncestorContainer)) {
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(savedRange);
    } else {
      placeCaretAtEnd(editor);
    }
  }

  document.addEventListener("selectionchange", rememberRange);

  function syncEditor(box) {
    const editor = editorOf(box);
    if (!editor) return;
    const id = box.dataset.communicationId;
    if (editor.isContentEditable) {
      const hidden = box.querySelector("[data-editor-html]");
      const html = editor.textContent.trim() === "" && !editor.querySelector("img, li") ? "" : editor.innerHTML;
      if (hidden) hidden.value = html;
      drafts.set(id, { html });
    } else {
      drafts.set(id, { text: editor.value });
    }
  }

  function escapeHtml(text) {
    const span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  }

  function textToHtml(text) {
    return text
      .trim()
      .split(/\n{2,}/)
      .map((paragraph) => "<p>" + escapeHtml(paragraph).replace(/\n/g, "<br>") + "</p>")
      .join("");
  }

  function insertIntoEditor(box, text) {
    const editor = editorOf(box);
    if (!editor) return;
    if (editor.isContentEditable) {
      restoreRange(editor);
      if (text.includes("\n")) document.execCommand("insertHTML", false, textToHtml(text));
      else document.execCommand("insertText", false, text);
    } else {
      editor.focus();
      const start = editor.selectionStart ?? editor.value.length;
      const end = editor.selectionEnd ?? editor.value.length;
      editor.setRangeText(text, start, end, "end");
    }
    syncEditor(box);
  }

  document.addEventListener("input", (event) => {
    const editor = event.target.closest("[data-reply-box] [data-editor]");
    if (editor) syncEditor(replyBox(editor));
  });

  // Before the form is serialised, copy the editor's HTML into the hidden field.
  document.addEventListener(
    "submit",
    (event) => {
      const box = event.target.closest("[data-reply-box]");
      if (box) syncEditor(box);
    },
    true,
  );

  function prepareReplyBox(box) {
    const id = box.dataset.communicationId;
    const editor = editorOf(box);
    if (box.hasAttribute("data-sent")) {
      drafts.delete(id);
      const selected = qs("#inbox-rows [data-row].is-selected .row-link");
      if (selected) selected.focus({ preventScroll: true });
    } else if (editor && drafts.has(id)) {
      const draft = drafts.get(id);
      const isEmpty = editor.isContentEditable ? editor.innerHTML.trim() === "" : editor.value === "";
      if (isEmpty && editor.isContentEditable && draft.html) {
        editor.innerHTML = draft.html;
        syncEditor(box);
      } else if (isEmpty && !editor.isContentEditable && draft.text) {
        editor.value = draft.text;
      }
    }
    renderAttachments(box);
    updateSendLabels(box);
  }

  // --- Reply box: formatting (email) ---------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const toggle = event.target.closest("[data-toggle-format]");
    if (toggle) {
      const toolbar = document.getElementById(toggle.getAttribute("aria-controls"));
      toolbar.hidden = !toolbar.hidden;
      toggle.setAttribute("aria-expanded", String(!toolbar.hidden));
      if (!toolbar.hidden) toolbar.querySelector("button").focus();
      return;
    }
    const button = event.target.closest("[data-format]");
    if (button) {
      const box = replyBox(button);
      const editor = editorOf(box);
      const command = button.dataset.format;
      if (command === "createLink") {
        const form = box.querySelector("[data-link-form]");
        form.hidden = false;
        form.querySelector("[data-link-url]").focus();
        return;
      }
      restoreRange(editor);
      document.execCommand(command, false, null);
      syncEditor(box);
      return;
    }
    const apply = event.target.closest("[data-link-apply]");
    if (apply) addLink(replyBox(apply));
  });

  // Keep the editor's selection when a toolbar button is pressed with the mouse.
  document.addEventListener("mousedown", (event) => {
    if (event.target.closest("[data-format], [data-emoji]")) event.preventDefault();
  });

  function addLink(box) {
    const form = box.querySelector("[data-link-form]");
    const input = form.querySelector("[data-link-url]");
    let url = input.value.trim();
    if (url && !/^[a-z]+:/i.test(url)) url = "https://" + url;
    form.hidden = true;
    input.value = "";
    if (!url || !SAFE_LINK.test(url)) return;
    const editor = editorOf(box);
    restoreRange(editor);
    const selection = window.getSelection();
    if (selection.isCollapsed) document.execCommand("insertHTML", false, '<a href="' + escapeHtml(url) + '">' + escapeHtml(url) + "</a>");
    else document.execCommand("createLink", false, url);
    syncEditor(box);
  }

  document.addEventListener("keydown", (event) => {
    const input = event.target.closest && event.target.closest("[data-link-url]");
    if (input && event.key === "Enter") {
      event.preventDefault();
      addLink(replyBox(input));
    }
  });

  // --- Reply box: emoji and templates ------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const emoji = event.target.closest("[data-emoji]");
    if (emoji) {
      insertIntoEditor(replyBox(emoji), emoji.dataset.emoji);
      return;
    }
    const template = event.target.closest("[data-template-url]");
    if (template) insertTemplate(template);
  });

  async function insertTemplate(button) {
    const box = replyBox(button);
    const menu = button.closest("details");
    let data;
    try {
      const response = await fetch(button.dataset.templateUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(String(response.status));
      data = await response.json();
    } catch (_error) {
      showUploadError(box, "That template could not be loaded. Please try again.");
      return;
    }
    if (menu) menu.open = false;
    insertIntoEditor(box, data.body);
  }

  // --- Reply box: attachments ------------------------------------------------------------------------------

  function showUploadError(box, message) {
    const error = box.querySelector("[data-upload-error]");
    if (!error) return;
    error.textContent = message;
    error.hidden = !message;
  }

  function formatBytes(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(bytes >= 10 * 1024 * 1024 ? 0 : 1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " bytes";
  }

  function checkUploads(box, input) {
    const limit = Number(box.dataset.maxUploadBytes || 0);
    const allowed = (box.dataset.allowedTypes || "").split(",").filter(Boolean);
    const keep = new DataTransfer();
    const problems = [];
    Array.from(input.files).forEach((file) => {
      if (limit && file.size > limit) problems.push("“" + file.name + "” is larger than the " + formatBytes(limit) + " limit.");
      else if (allowed.length && !allowed.includes(file.type)) problems.push("“" + file.name + "” is not an allowed file type (PDF, images, text or Word documents).");
      else keep.items.add(file);
    });
    input.files = keep.files;
    showUploadError(box, problems.join(" "));
  }

  function chip(label, onRemove, removeLabel) {
    const item = document.createElement("span");
    item.className = "attach-chip";
    item.innerHTML =
      '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="m21.44 11.05-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48"/></svg>';
    const name = document.createElement("span");
    name.textContent = label;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.setAttribute("aria-label", removeLabel);
    remove.textContent = "×";
    remove.addEventListener("click", onRemove);
    item.append(name, remove);
    return item;
  }

  function renderAttachments(box) {
    const list = box.querySelector("[data-attachment-chips]");
    if (!list) return;
    list.replaceChildren();
    let count = 0;
    qsa("input[name='document']:checked", box).forEach((box_) => {
      count += 1;
      list.append(
        chip(box_.dataset.documentName, () => {
          box_.checked = false;
          renderAttachments(box);
        }, "Remove " + box_.dataset.documentName),
      );
    });
    const upload = box.querySelector("[data-upload]");
    if (upload) {
      Array.from(upload.files).forEach((file) => {
        count += 1;
        list.append(
          chip(file.name + " · " + formatBytes(file.size), () => {
            const keep = new DataTransfer();
            Array.from(upload.files).forEach((other) => other !== file && keep.items.add(other));
            upload.files = keep.files;
            renderAttachments(box);
          }, "Remove " + file.name),
        );
      });
    }
    const badge = box.querySelector("[data-attach-count]");
    if (badge) {
      badge.textContent = String(count);
      badge.hidden = count === 0;
    }
  }

  document.addEventListener("change", (event) => {
    const box = event.target.closest("[data-reply-box]");
    if (!box) return;
    if (event.target.matches("[data-upload]")) checkUploads(box, event.target);
    if (event.target.matches("[data-upload], input[name='document']")) renderAttachments(box);
    if (event.target.matches("[data-secure-toggle]")) updateSendLabels(box);
  });

  // --- Reply box: secure email -------------------------------------------------------------------------------

  function updateSendLabels(box) {
    const secure = box.querySelector("[data-secure-toggle]");
    const isSecure = Boolean(secure && secure.checked);
    qsa("[data-send-label]", box).forEach((button) => {
      const label = button.querySelector("[data-label]");
      if (label) label.textContent = isSecure ? button.dataset.secureLabel : button.dataset.sendLabel;
    });
  }

  // --- After every swap -----------------------------------------------------------------------------------------

  htmx.onLoad((root) => {
    if (!(root instanceof Element)) return;
    openDialogs(root);
    qsa("[data-messages]", root).forEach((messages) => {
      messages.scrollTop = messages.scrollHeight;
    });
    const boxes = root.matches("[data-reply-box]") ? [root] : qsa("[data-reply-box]", root);
    boxes.forEach(prepareReplyBox);
    const conversation = root.matches("[data-conversation]") ? root : qs("[data-conversation]", root);
    if (conversation) markSelected(conversation.dataset.communicationId);
    if (root === document.body || qs("[data-toggle-panel]", root)) applyPanel();
  });

  // Icon-rail tooltips for the portal sidebar on this page.
  document.addEventListener("DOMContentLoaded", () => {
    if (!onInboxPage()) return;
    qsa(".sidebar .nav-link, .sidebar [data-testid='sign-out']").forEach((link) => {
      if (!link.title) link.title = link.textContent.trim();
    });
  });
})();
