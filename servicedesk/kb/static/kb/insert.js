// The ticket page's "Insert an article link": search the knowledge base as the agent types
// (GET /api/v1/kb/search/), and put the chosen article's link into the reply at the cursor.
(function () {
  "use strict";
  const box = document.querySelector("[data-kb-insert]");
  if (!box) return;
  const input = box.querySelector("input[type=search]");
  const list = box.querySelector("ul");
  const reply = document.getElementById(box.dataset.kbInsert);
  const origin = window.location.origin;
  let timer = null;
  let asked = 0;

  function insert(text) {
    if (!reply) return;
    const start = reply.selectionStart ?? reply.value.length;
    const end = reply.selectionEnd ?? reply.value.length;
    reply.value = reply.value.slice(0, start) + text + reply.value.slice(end);
    reply.focus();
    reply.selectionStart = reply.selectionEnd = start + text.length;
  }

  async function search() {
    const query = input.value.trim();
    const mine = ++asked;
    list.replaceChildren();
    if (query.length < 2) return;
    try {
      const response = await fetch("/api/v1/kb/search/?limit=5&q=" + encodeURIComponent(query), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok || mine !== asked) return;
      for (const hit of await response.json()) {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.textContent = hit.title; // text, never HTML
        button.addEventListener("click", () => insert(hit.title + ": " + origin + hit.url));
        item.append(button);
        list.append(item);
      }
      if (!list.children.length) {
        const item = document.createElement("li");
        item.className = "muted";
        item.textContent = box.dataset.none;
        list.append(item);
      }
    } catch (error) {
      // Offline or refused: the agent can still write the reply.
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 250);
  });
})();
