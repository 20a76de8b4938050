// The contact form's suggestions: while the customer types the subject, the three best
// knowledge-base articles appear below it, then answered questions of the community
// (GET /help/kb/suggest/, debounced, no page reload).
(function () {
  "use strict";
  const box = document.querySelector("[data-kb-suggest]");
  if (!box) return;
  const field = document.getElementById(box.dataset.kbSuggest);
  const list = box.querySelector("ul");
  if (!field || !list) return;
  let timer = null;
  let asked = 0;
  let last = "";

  async function suggest() {
    const query = field.value.trim();
    if (query === last) return;
    last = query;
    const mine = ++asked;
    if (query.length < 3) {
      box.hidden = true;
      list.replaceChildren();
      return;
    }
    try {
      const response = await fetch(box.dataset.url + "?source=contact&q=" + encodeURIComponent(query), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok || mine !== asked) return;
      const data = await response.json();
      list.replaceChildren();
      const label = box.dataset.answerLabel || "";
      for (const found of [...(data.articles || []), ...(data.answers || [])]) {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = found.url;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = found.title; // text, never HTML
        item.append(link);
        if (found.source && label) {
          const kind = document.createElement("span");
          kind.className = "muted";
          kind.textContent = " (" + label + ")";
          item.append(kind);
        }
        list.append(item);
      }
      box.hidden = list.children.length === 0;
    } catch (error) {
      // No suggestions this time; the form works without them.
    }
  }

  field.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 300);
  });
})();
