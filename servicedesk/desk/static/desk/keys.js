/* Keyboard shortcuts of the agent workspace (the list is #keyboard-shortcuts, desk/_keyboard_shortcuts.html).
 *
 * Inbox (#inbox-results, rows tr[data-row] with a checkbox input.bulk-select):
 *   j / k    move the current row down / up: the row gets .keys-current and aria-current="true",
 *            is scrolled into view, and its ticket link (a.ticket-link) takes the focus
 *   x        tick or untick the current row (a click, so the bulk bar counts it)
 *   Enter    open the current row's ticket (a focused link or button keeps its own Enter)
 * Ticket page (#reply-form, textarea #reply_text, properties #props_*, macros #macro-apply-select):
 *   r / n    choose "reply" / "note" in the reply form and focus the text
 *   a, s, t  focus the assignee, status, tags field
 *   m        open the command palette (macros/palette.js, window.SDPalette) on its "Apply macro"
 *            commands only; without it, or with no macro for the ticket, focus the macro panel's select
 *   Ctrl/Cmd+Enter in the text sends the form (its Send button)
 * Everywhere in the desk:
 *   ?        open the list of shortcuts (a modal <dialog>; Escape closes it and gives the focus back)
 *   Escape   in a text field, leaves the field so that shortcuts work again
 *
 * No shortcut fires while typing in an input, textarea, select or contenteditable (except
 * Ctrl/Cmd+Enter in the reply text and Escape), nor with Alt, Ctrl or Meta held (except
 * Ctrl/Cmd+Enter). Ctrl/Cmd+K belongs to the palette, which acts on it itself.
 * The current inbox row is remembered by its ticket (data-ticket), so it survives the live
 * refresh of #inbox-results (desk/live.js). Every page works without this script.
 */
(function () {
  "use strict";
  var current = null; // data-ticket of the current inbox row
  var returnFocus = null;
  var NOT_TYPING = ["checkbox", "radio", "button", "submit", "reset", "image", "range", "color", "file"];

  function typing(element) {
    if (!element || element === document.body) return false;
    if (element.isContentEditable) return true;
    var tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") return NOT_TYPING.indexOf((element.type || "").toLowerCase()) < 0;
    return false;
  }

  // Inbox.
  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#inbox-results tr[data-row]"));
  }

  function currentIndex(list) {
    for (var i = 0; i < list.length; i += 1) {
      if (list[i].classList.contains("keys-current")) return i;
    }
    for (var j = 0; j < list.length; j += 1) {
      if (current !== null && list[j].dataset.ticket === current) return j;
    }
    return -1;
  }

  function mark(list, index) {
    list.forEach(function (row) {
      row.classList.remove("keys-current");
      row.removeAttribute("aria-current");
    });
    var row = list[index];
    row.classList.add("keys-current");
    row.setAttribute("aria-current", "true");
    current = row.dataset.ticket || null;
    row.scrollIntoView({ block: "nearest" });
    var link = row.querySelector("a.ticket-link") || row.querySelector("a[href]");
    if (link) link.focus({ preventScroll: true });
  }

  function move(step) {
    var list = rows();
    if (!list.length) return false;
    var index = currentIndex(list);
    var next = index < 0 ? 0 : Math.min(Math.max(index + step, 0), list.length - 1);
    mark(list, next);
    return true;
  }

  function currentRow() {
    var list = rows();
    var index = currentIndex(list);
    return index < 0 ? null : list[index];
  }

  function toggle() {
    var row = currentRow();
    var box = row && row.querySelector("input.bulk-select");
    if (!box || box.disabled) return false;
    box.click(); // fires "change", which inbox.js counts
    return true;
  }

  function openRow() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("a[href], button, summary, input, select, textarea")) return false;
    var row = currentRow();
    var link = row && (row.querySelector("a.ticket-link") || row.querySelector("a[href]"));
    if (!link) return false;
    window.location.assign(link.href);
    return true;
  }

  // Ticket page.
  function replyAs(kind) {
    var form = document.getElementById("reply-form");
    var text = document.getElementById("reply_text");
    if (!form || !text) return false;
    var radio = form.querySelector('input[name="kind"][value="' + kind + '"]');
    if (radio && !radio.checked) radio.click(); // "change" lets drafts.js keep each kind's draft
    text.focus();
    return true;
  }

  function focusField(id) {
    var field = document.getElementById(id);
    if (!field || field.disabled) return false;
    field.focus();
    return true;
  }

  function macros() {
    var palette = window.SDPalette;
    if (palette && palette.open({ kind: "apply-macro" })) return true;
    return focusField("macro-apply-select");
  }

  function send(target) {
    if (!target || target.id !== "reply_text" || !target.form) return false;
    var form = target.form;
    var button = form.querySelector('button[type="submit"][name="action"][value="send"]');
    if (typeof form.requestSubmit === "function") form.requestSubmit(button || undefined);
    else if (button) button.click();
    else form.submit();
    return true;
  }

  // The list of shortcuts.
  function dialog() {
    return document.getElementById("keyboard-shortcuts");
  }

  function showHelp() {
    var box = dialog();
    if (!box || box.open || typeof box.showModal !== "function") return false;
    returnFocus = document.activeElement;
    box.showModal();
    var close = box.querySelector("[data-keys-close]");
    if (close) close.focus();
    return true;
  }

  function setUpHelp() {
    var box = dialog();
    if (!box) return;
    box.addEventListener("close", function () {
      var back = returnFocus;
      returnFocus = null;
      if (back && back !== document.body && typeof back.focus === "function" && document.contains(back)) back.focus();
    });
    box.addEventListener("click", function (event) {
      if (event.target === box || (event.target.closest && event.target.closest("[data-keys-close]"))) box.close();
    });
  }

  var INBOX = { j: function () { return move(1); }, k: function () { return move(-1); }, x: toggle, Enter: openRow };
  var TICKET = {
    r: function () { return replyAs("reply"); },
    n: function () { return replyAs("note"); },
    a: function () { return focusField("props_assignee"); },
    s: function () { return focusField("props_status"); },
    t: function () { return focusField("props_tags"); },
    m: macros,
  };

  function own(table, key) {
    return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : null;
  }

  function onKey(event) {
    if (event.defaultPrevented || event.isComposing) return;
    var target = event.target;
    var box = dialog();
    if (box && box.open) return; // the dialog has the keyboard; Escape closes it natively
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey) {
      if (send(target)) event.preventDefault();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(target)) {
      if (event.key === "Escape" && typeof target.blur === "function") target.blur();
      return;
    }
    var handler = null;
    if (event.key === "?") handler = showHelp;
    else if (event.shiftKey) return;
    else if (document.getElementById("inbox-results")) handler = own(INBOX, event.key);
    else if (document.getElementById("reply-form")) handler = own(TICKET, event.key);
    if (handler && handler()) event.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpHelp);
  else setUpHelp();
})();
