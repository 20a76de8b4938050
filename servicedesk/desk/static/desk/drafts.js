/* Reply drafts on the ticket page (docs/drafts.md).
 * What the agent types is saved on the server a few seconds after they stop
 * typing (fetch POST with the form's CSRF token), when the field loses focus,
 * and when the page is left (navigator.sendBeacon). Saves go one at a time;
 * one that fails for want of a connection is made again when the browser is
 * back online. A draft is kept per kind (reply, note): switching kind shows
 * that kind's draft if there is one, else the text moves along. The server
 * renders the draft into the textarea, so none of this is needed to see it.
 * Live updates (live.js) never replace the reply form, so the textarea is
 * never overwritten while the agent types. Held replies count down, then show what
 * became of them as the server tells it ("Sent", or "Not sent" and why). */
(function () {
  "use strict";
  var SAVE_AFTER_MS = 2000;

  var form = document.getElementById("reply-form");
  var box = document.getElementById("reply-draft");
  if (!form || !box || !("fetch" in window)) return;
  var field = form.querySelector("textarea[name=text]");
  var status = document.getElementById("draft-status");
  var discard = document.getElementById("draft-discard-form");
  var url = box.getAttribute("data-save-url");
  var drafts = {};
  try {
    drafts = JSON.parse(document.getElementById("reply-drafts").textContent) || {};
  } catch (e) {
    drafts = {};
  }

  var timer = null;
  var dirty = false;
  var inFlight = false;
  var again = false;
  var leaving = false;

  function kind() {
    var checked = form.querySelector("input[name=kind]:checked");
    return checked ? checked.value : "reply";
  }

  function quote() {
    var box = form.querySelector("input[name=quote_history]");
    return box && box.checked;
  }

  function token() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function show(text) {
    if (status && text !== undefined && status.textContent !== text) status.textContent = text;
  }

  function payload(forKind, text) {
    var data = new FormData();
    data.append("csrfmiddlewaretoken", token());
    data.append("kind", forKind);
    data.append("text", text);
    if (quote()) data.append("quote_history", "on");
    return data;
  }

  function save() {
    window.clearTimeout(timer);
    timer = null;
    if (leaving || !field) return;
    if (inFlight) {
      again = true;
      return;
    }
    if (!dirty) return;
    if (!navigator.onLine) {
      show(box.getAttribute("data-offline"));
      return;
    }
    var forKind = kind();
    var text = field.value;
    dirty = false;
    inFlight = true;
    fetch(url, {
      method: "POST",
      body: payload(forKind, text),
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": token() },
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.ok) {
            drafts[forKind] = text;
            show(body.label || "");
          } else {
            show((body.text && body.text[0]) || body.detail || box.getAttribute("data-failed"));
          }
        });
      })
      .catch(function () {
        // No answer: the connection is gone; saved again when it is back.
        dirty = true;
        show(box.getAttribute("data-offline"));
      })
      .then(function () {
        inFlight = false;
        if (again) {
          again = false;
          save();
        }
      });
  }

  function later() {
    dirty = true;
    window.clearTimeout(timer);
    timer = window.setTimeout(save, SAVE_AFTER_MS);
  }

  function beacon() {
    if (!dirty || leaving || !field || !navigator.sendBeacon) return;
    dirty = false;
    navigator.sendBeacon(url, payload(kind(), field.value));
  }

  if (field) {
    var shownKind = kind();
    field.addEventListener("input", later);
    field.addEventListener("blur", save);
    form.addEventListener("change", function (event) {
      var target = event.target;
      if (target.name === "quote_history") later();
      if (target.name !== "kind" || !field) return;
      var next = kind();
      if (next === shownKind) return;
      if (drafts[next]) {
        // That kind has a draft of its own: keep this one under its kind and show the other.
        var previous = shownKind;
        var text = field.value;
        if (dirty) {
          window.clearTimeout(timer);
          dirty = false;
          fetch(url, { method: "POST", body: payload(previous, text), credentials: "same-origin" }).catch(
            function () {}
          );
        }
        drafts[previous] = text;
        field.value = drafts[next];
      } else if (field.value.trim()) {
        // The text moves along to the kind chosen.
        fetch(url, { method: "POST", body: payload(shownKind, ""), credentials: "same-origin" }).catch(function () {});
        delete drafts[shownKind];
        dirty = true;
        save();
      }
      shownKind = next;
    });
    window.addEventListener("online", function () {
      if (dirty) save();
    });
    window.addEventListener("pagehide", beacon);
    window.addEventListener("beforeunload", beacon);
  }

  // Sending or discarding: what is in the field is no longer a draft to save.
  form.addEventListener("submit", function () {
    leaving = true;
    window.clearTimeout(timer);
  });
  if (discard) {
    discard.addEventListener("submit", function () {
      leaving = true;
      window.clearTimeout(timer);
      var input = discard.querySelector("input[name=kind]");
      if (input) input.value = kind();
    });
  }

  // Held replies: "Sending in N s", then, with no more Undo, what the server says became of
  // the reply (held_reply_state_json): "Sent" only once it was, "Not sent: <reason>" with a
  // link when the release returned it. Asked every two seconds until it is known; the
  // sweep sends a reply whose task was lost within a minute, so after two the page says
  // it does not know.
  var STATE_EVERY_MS = 2000;
  var STATE_TRIES = 60;
  Array.prototype.forEach.call(document.querySelectorAll(".held-reply[data-held-seconds]"), function (held) {
    var left = Number(held.getAttribute("data-held-seconds")) || 0;
    var state = held.querySelector(".held-reply-state");
    var undo = held.querySelector(".held-reply-undo");
    var stateUrl = held.getAttribute("data-state-url");
    var tries = 0;
    function show(text, url, link) {
      if (!state) return;
      state.textContent = text;
      if (url && link) {
        var a = document.createElement("a");
        a.href = url;
        a.textContent = link;
        state.appendChild(document.createTextNode(" "));
        state.appendChild(a);
      }
    }
    function ask() {
      tries += 1;
      if (tries > STATE_TRIES || !stateUrl) {
        show(box.getAttribute("data-unknown"));
        return;
      }
      fetch(stateUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (body && body.state && body.state !== "held" && body.state !== "sending") {
            held.setAttribute("data-state", body.state);
            show(body.label, body.url, body.link);
            return;
          }
          window.setTimeout(ask, STATE_EVERY_MS);
        })
        .catch(function () {
          window.setTimeout(ask, STATE_EVERY_MS);
        });
    }
    function tick() {
      if (left <= 0) {
        if (undo) undo.remove();
        show(box.getAttribute("data-sending-now"));
        ask();
        return;
      }
      show(String(box.getAttribute("data-sending")).replace("%(seconds)s", String(left)));
      left -= 1;
      window.setTimeout(tick, 1000);
    }
    tick();
  });
})();
