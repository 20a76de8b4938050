// The desk's command palette: Ctrl+K (Cmd+K on a Mac) on every desk page (docs/macros.md#command-palette).
//
// Commands: the navigation of the desk ("Go to inbox", ...), "Go to ticket <reference>" when the
// query is a ticket reference, and on a ticket page "Apply macro: <name>" and "Preview macro:
// <name>" for each macro that applies to the ticket (read from #macro-palette-data, which the
// ticket page's macro panel writes). Applying posts the same form as the panel's Apply button,
// with the same one-time submission_id, so the server checks access and runs the macro as for
// any form post, and once for the page.
//
// The palette acts only once opened with Ctrl/Cmd+K (or by another desk script through
// window.SDPalette): no other key does anything outside it, so typing in a reply or a search
// field is never taken as a command.
//
// window.SDPalette, for the desk's other scripts (keys.js opens it on "m"):
//   open()                           open with every command, as Ctrl/Cmd+K does; true
//   open({kind: "apply-macro"})      open showing only the commands of that kind (go,
//                                    apply-macro, preview-macro); false, and nothing opens, when
//                                    the page has none of them. Backspace in the empty field
//                                    shows every command again.
//   close()                          close, the focus back where it was
//   isOpen()
//
// Stable hooks for tests and assistive technology:
//   script#command-palette-script   this script; data-config holds the commands and words (JSON)
//   #command-palette                the dialog (role=dialog, aria-modal=true, aria-labelledby
//                                   #command-palette-title); hidden while closed; data-kind: the
//                                   kind of command it is limited to ("" for every command)
//   #command-palette-input          the search field (role=combobox, aria-controls
//                                   #command-palette-list, aria-expanded, aria-activedescendant)
//   #command-palette-list           the results (role=listbox)
//   .command-palette-option         each result (role=option, id command-palette-option-<n>,
//                                   aria-selected, data-command: go-inbox, go-ticket,
//                                   apply-macro-<id>, preview-macro-<id>, ...)
//   #command-palette-empty          "no matching command" (role=status)
// Keys while open: ArrowDown/ArrowUp/Home/End choose, Enter runs, Escape closes and gives the
// focus back to where it was; Tab stays in the palette.
(function () {
  "use strict";
  const script = document.getElementById("command-palette-script");
  if (!script) return;
  let config;
  try {
    config = JSON.parse(script.dataset.config || "{}");
  } catch (error) {
    return;
  }
  if (!config.strings) return;
  const words = config.strings;

  // The stylesheet beside this script, so the palette needs nothing in the page's head.
  const sheet = document.createElement("link");
  sheet.rel = "stylesheet";
  sheet.href = script.src.replace(/palette\.js(\?.*)?$/, "macros.css");
  document.head.append(sheet);

  let dialog = null;
  let input = null;
  let list = null;
  let empty = null;
  let results = [];
  let active = 0;
  let returnFocus = null;
  let only = ""; // the kind of command shown, "" for all

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? values[key] : all));
  }

  function ticketCommands() {
    const holder = document.getElementById("macro-palette-data");
    if (!holder) return [];
    let data;
    try {
      data = JSON.parse(holder.textContent || "{}");
    } catch (error) {
      return [];
    }
    const commands = [];
    for (const macro of data.macros || []) {
      commands.push({
        id: "apply-macro-" + macro.id,
        kind: "apply-macro",
        label: fill(words.apply, { name: macro.name }),
        run: () => post(data.apply_url, { macro: String(macro.id), submission_id: data.submission_id || "" }),
      });
    }
    for (const macro of data.macros || []) {
      commands.push({
        id: "preview-macro-" + macro.id,
        kind: "preview-macro",
        label: fill(words.preview, { name: macro.name }),
        run: () => window.location.assign(data.preview_url + "?macro=" + encodeURIComponent(macro.id)),
      });
    }
    return commands;
  }

  function allCommands() {
    const navigation = (config.commands || []).map((command) => ({
      id: command.id,
      kind: "go",
      label: command.label,
      run: () => window.location.assign(command.url),
    }));
    return ticketCommands().concat(navigation);
  }

  function post(url, fields) {
    const token = document.querySelector("input[name=csrfmiddlewaretoken]");
    const form = document.createElement("form");
    form.method = "post";
    form.action = url;
    form.hidden = true;
    const values = Object.assign({}, fields);
    if (token) values.csrfmiddlewaretoken = token.value;
    for (const [name, value] of Object.entries(values)) {
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = name;
      field.value = value;
      form.append(field);
    }
    document.body.append(form);
    form.submit();
  }

  // Fuzzy match: every character of the query in order; consecutive characters and word
  // starts score higher. -1 when the label does not match.
  function score(query, label) {
    if (!query) return 0;
    const text = label.toLowerCase();
    let position = -1;
    let total = 0;
    let previous = -2;
    for (const character of query.toLowerCase()) {
      if (character === " ") continue;
      position = text.indexOf(character, position + 1);
      if (position < 0) return -1;
      total += 1;
      if (position === previous + 1) total += 2;
      if (position === 0 || /[\s:(-]/.test(text[position - 1])) total += 3;
      previous = position;
    }
    return total - text.length / 100;
  }

  const REFERENCE = /([A-Za-z][A-Za-z0-9]*-\d+)\s*$/;

  function search(query) {
    const found = [];
    const reference = query.trim().match(REFERENCE);
    if (reference && config.ticket_url) {
      const value = reference[1].toUpperCase();
      found.push({
        id: "go-ticket",
        kind: "go-ticket",
        label: fill(words.go_ticket, { reference: value }),
        run: () =>
          window.location.assign(config.ticket_url.replace(config.reference_mark, encodeURIComponent(value))),
        score: Infinity,
      });
    }
    allCommands().forEach((command, order) => {
      const value = score(query.trim(), command.label);
      if (value >= 0) found.push(Object.assign(command, { score: value, order: order }));
    });
    found.sort((a, b) => b.score - a.score || (a.order || 0) - (b.order || 0));
    return found.filter((command) => !only || command.kind === only).slice(0, 50);
  }

  function build() {
    dialog = document.createElement("div");
    dialog.id = "command-palette";
    dialog.className = "command-palette";
    dialog.hidden = true;
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", "command-palette-title");

    const box = document.createElement("div");
    box.className = "command-palette-box";
    const title = document.createElement("h2");
    title.id = "command-palette-title";
    title.className = "visually-hidden";
    title.textContent = words.title;

    input = document.createElement("input");
    input.id = "command-palette-input";
    input.type = "text";
    input.autocomplete = "off";
    input.spellcheck = false;
    input.placeholder = words.placeholder;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-label", words.title);
    input.setAttribute("aria-controls", "command-palette-list");
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-describedby", "command-palette-hint");

    list = document.createElement("ul");
    list.id = "command-palette-list";
    list.className = "command-palette-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", words.title);

    empty = document.createElement("p");
    empty.id = "command-palette-empty";
    empty.className = "muted command-palette-empty";
    empty.setAttribute("role", "status");

    const hint = document.createElement("p");
    hint.id = "command-palette-hint";
    hint.className = "muted command-palette-hint";
    hint.textContent = words.hint;

    box.append(title, input, list, empty, hint);
    dialog.append(box);
    document.body.append(dialog);

    input.addEventListener("input", render);
    input.addEventListener("keydown", onKey);
    list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus in the field
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) run(Number(option.dataset.index));
    });
    dialog.addEventListener("mousedown", (event) => {
      if (event.target === dialog) close();
    });
    // Focus trap: whatever takes the focus out of an open palette gives it back to the field.
    document.addEventListener("focusin", (event) => {
      if (dialog && !dialog.hidden && !dialog.contains(event.target)) input.focus();
    });
  }

  function render() {
    results = search(input.value);
    active = 0;
    list.replaceChildren();
    results.forEach((command, index) => {
      const option = document.createElement("li");
      option.id = "command-palette-option-" + index;
      option.className = "command-palette-option";
      option.setAttribute("role", "option");
      option.dataset.index = String(index);
      option.dataset.command = command.id;
      option.textContent = command.label; // text, never HTML
      list.append(option);
    });
    empty.textContent = results.length ? "" : words.none;
    highlight();
  }

  function highlight() {
    const options = list.querySelectorAll("[role=option]");
    options.forEach((option, index) => option.setAttribute("aria-selected", index === active ? "true" : "false"));
    if (options[active]) {
      input.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function onKey(event) {
    const last = results.length - 1;
    if (event.key === "ArrowDown") {
      active = active >= last ? 0 : active + 1;
    } else if (event.key === "ArrowUp") {
      active = active <= 0 ? Math.max(last, 0) : active - 1;
    } else if (event.key === "Home" && event.ctrlKey) {
      active = 0;
    } else if (event.key === "End" && event.ctrlKey) {
      active = Math.max(last, 0);
    } else if (event.key === "Enter") {
      event.preventDefault();
      run(active);
      return;
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
      return;
    } else if (event.key === "Backspace" && only && !input.value) {
      event.preventDefault();
      limit("");
      render();
      return;
    } else if (event.key === "Tab") {
      event.preventDefault(); // the field is the palette's one stop
      return;
    } else {
      return;
    }
    event.preventDefault();
    highlight();
  }

  function run(index) {
    const command = results[index];
    if (!command) return;
    close({ restore: false });
    command.run();
  }

  function limit(kind) {
    only = kind;
    dialog.dataset.kind = kind;
    input.placeholder = (kind && (words.placeholder_kinds || {})[kind]) || words.placeholder;
  }

  function open(options) {
    const kind = (options && options.kind) || "";
    if (kind && !allCommands().some((command) => command.kind === kind)) return false;
    if (!dialog) build();
    if (dialog.hidden) returnFocus = document.activeElement;
    dialog.hidden = false;
    input.value = "";
    limit(kind);
    render();
    input.focus();
    return true;
  }

  function close(options) {
    if (!dialog || dialog.hidden) return;
    dialog.hidden = true;
    if ((!options || options.restore !== false) && returnFocus && typeof returnFocus.focus === "function") {
      returnFocus.focus();
    }
    returnFocus = null;
  }

  window.SDPalette = {
    open: open,
    close: () => close(),
    isOpen: () => Boolean(dialog && !dialog.hidden),
  };

  document.addEventListener(
    "keydown",
    (event) => {
      if (!(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) return;
      if ((event.key || "").toLowerCase() !== "k") return;
      event.preventDefault();
      if (dialog && !dialog.hidden) close();
      else open();
    },
    true,
  );
})();
