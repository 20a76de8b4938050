// Canned replies in the ticket page's reply box (docs/macros.md#canned-replies).
//
// Typing "/" at the start of a line or after a space, then letters ("/refu"), opens a list of the
// canned replies whose names match (fuzzy). ArrowDown/ArrowUp choose, Enter or Tab inserts the
// chosen one in place of the "/refu" typed, Escape closes the list. The text is filled in by the
// server for this ticket's customer (GET /desk/canned/<id>/render/?ticket=<reference>, which
// checks access), so placeholders carry the customer's name in their language.
//
// Stable hooks: #canned-replies-data (JSON written by the ticket page's macro panel),
// #reply_text (the reply and note textarea; gets aria-controls and aria-activedescendant),
// #canned-popup (role=listbox, aria-label), .canned-option (role=option, id canned-option-<n>,
// data-canned=<id>), #canned-status (role=status: how many match, or why an insert failed).
(function () {
  "use strict";
  const holder = document.getElementById("canned-replies-data");
  const area = document.getElementById("reply_text");
  if (!holder || !area) return;
  let data;
  try {
    data = JSON.parse(holder.textContent || "{}");
  } catch (error) {
    return;
  }
  const items = data.items || [];
  const words = data.strings || {};
  if (!items.length) return;

  const popup = document.createElement("ul");
  popup.id = "canned-popup";
  popup.className = "canned-popup";
  popup.hidden = true;
  popup.setAttribute("role", "listbox");
  popup.setAttribute("aria-label", words.label || "");
  const status = document.createElement("p");
  status.id = "canned-status";
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  area.insertAdjacentElement("afterend", popup);
  popup.insertAdjacentElement("afterend", status);
  area.setAttribute("aria-controls", "canned-popup");
  area.setAttribute("aria-autocomplete", "list");

  let token = null; // {start, end, query}: the "/name" before the cursor
  let dismissedAt = -1;
  let shown = [];
  let active = 0;

  const TOKEN = /(^|\s)\/([\p{L}\p{N}_-]+)$/u;

  function findToken() {
    if (area.selectionStart !== area.selectionEnd) return null;
    const before = area.value.slice(0, area.selectionStart);
    const match = before.match(TOKEN);
    if (!match) return null;
    const start = before.length - match[2].length - 1;
    return { start: start, end: before.length, query: match[2] };
  }

  function score(query, name) {
    const text = name.toLowerCase();
    let position = -1;
    let total = 0;
    let previous = -2;
    for (const character of query.toLowerCase()) {
      position = text.indexOf(character, position + 1);
      if (position < 0) return -1;
      total += 1 + (position === previous + 1 ? 2 : 0) + (position === 0 || text[position - 1] === " " ? 3 : 0);
      previous = position;
    }
    return total;
  }

  function update() {
    token = findToken();
    if (!token || token.start === dismissedAt) return hide();
    shown = items
      .map((item) => ({ item: item, score: score(token.query, item.name) }))
      .filter((entry) => entry.score >= 0)
      .sort((a, b) => b.score - a.score)
      .slice(0, 10)
      .map((entry) => entry.item);
    popup.replaceChildren();
    if (!shown.length) {
      const none = document.createElement("li");
      none.className = "muted canned-none";
      none.textContent = words.none || "";
      popup.append(none);
    }
    shown.forEach((item, index) => {
      const option = document.createElement("li");
      option.id = "canned-option-" + index;
      option.className = "canned-option";
      option.setAttribute("role", "option");
      option.dataset.canned = String(item.id);
      option.dataset.index = String(index);
      option.textContent = item.name; // text, never HTML
      popup.append(option);
    });
    active = 0;
    popup.hidden = false;
    status.textContent = shown.length ? String(shown.length) : words.none || "";
    highlight();
  }

  function hide() {
    popup.hidden = true;
    shown = [];
    area.removeAttribute("aria-activedescendant");
  }

  function highlight() {
    const options = popup.querySelectorAll("[role=option]");
    options.forEach((option, index) => option.setAttribute("aria-selected", index === active ? "true" : "false"));
    if (options[active]) area.setAttribute("aria-activedescendant", options[active].id);
    else area.removeAttribute("aria-activedescendant");
  }

  async function insert(index) {
    const item = shown[index];
    const at = token;
    if (!item || !at) return;
    hide();
    let text;
    try {
      const response = await fetch(item.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      text = (await response.json()).text;
    } catch (error) {
      status.textContent = words.failed || "";
      return;
    }
    const typed = "/" + at.query;
    let start = at.start;
    let end = at.end;
    if (area.value.slice(start, end) !== typed) {
      // The text moved while the reply was fetched: insert at the cursor instead.
      start = area.selectionStart;
      end = area.selectionEnd;
    }
    area.value = area.value.slice(0, start) + text + area.value.slice(end);
    area.focus();
    area.selectionStart = area.selectionEnd = start + text.length;
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }

  area.addEventListener("input", update);
  area.addEventListener("click", update);
  // Closed a moment after the text loses the focus (a click on an option lands first), unless
  // the focus is back by then: the list typed since must stay (a lost focus of the window, or
  // a script's, reopened nothing and left Enter to write a new line).
  area.addEventListener("blur", () =>
    setTimeout(() => {
      if (document.activeElement !== area) hide();
    }, 150)
  );
  area.addEventListener("keydown", (event) => {
    if (popup.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!shown.length) return;
      event.preventDefault();
      const last = shown.length - 1;
      active = event.key === "ArrowDown" ? (active >= last ? 0 : active + 1) : active <= 0 ? last : active - 1;
      highlight();
    } else if ((event.key === "Enter" || event.key === "Tab") && shown.length) {
      event.preventDefault();
      insert(active);
    } else if (event.key === "Escape") {
      event.preventDefault();
      dismissedAt = token ? token.start : -1;
      hide();
    }
  });
  popup.addEventListener("mousedown", (event) => event.preventDefault());
  popup.addEventListener("click", (event) => {
    const option = event.target.closest("[role=option]");
    if (option) insert(Number(option.dataset.index));
  });
})();
