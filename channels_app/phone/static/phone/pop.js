/* Screen pops of calls on every desk page (channels_app/phone/views.py).
 * The desk renders each pop for the signed-in agent; this script only asks
 * for them and puts them in #phone-pops:
 *  - every pop when the page opens, when the live stream reconnects, and
 *    every 30 s (a push is sent at most once: the database is the truth);
 *  - one call's pop again when the live stream says the call changed
 *    (live.js hands such frames on as "desk:frame" events).
 * A pop that answers 204 (nothing to show this agent now) is removed.
 * A tel: link of a ticket page (data-ticket, data-number), clicked, records
 * the outbound call (/desk/calls/dial/) and shows its pop; the browser
 * still hands the number to the phone as the link says.
 * The pop's forms are plain forms: they work without this script. */
(function () {
  "use strict";
  var REFRESH_MS = 30000;
  var box = document.getElementById("phone-pops");
  if (!box || !window.fetch) return;
  var popsUrl = box.getAttribute("data-pops");
  var popUrl = box.getAttribute("data-pop");

  function here() {
    return location.pathname + location.search;
  }

  function withNext(url) {
    return url + (url.indexOf("?") < 0 ? "?" : "&") + "next=" + encodeURIComponent(here());
  }

  function parse(html) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    return holder;
  }

  function shown(callId) {
    return box.querySelector('[data-call="' + String(Number(callId)) + '"]');
  }

  function typing(element) {
    // An agent writing a wrap-up note keeps it: a refresh never replaces a pop being typed in.
    var active = document.activeElement;
    return element && active && element.contains(active) && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName);
  }

  function place(callId, html) {
    var current = shown(callId);
    if (typing(current)) return;
    var fresh = html ? parse(html).querySelector("[data-call]") : null;
    if (!fresh) {
      if (current) current.remove();
      return;
    }
    if (current) {
      current.replaceWith(fresh);
    } else {
      box.insertBefore(fresh, box.firstChild);
    }
  }

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (response) {
      if (response.status === 204) return "";
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    });
  }

  function one(callId) {
    var url = withNext(popUrl.replace("/0/", "/" + String(Number(callId)) + "/"));
    return fetchText(url).then(
      function (html) {
        place(callId, html);
      },
      function () {
        /* Not this agent's call (any more), or the desk did not answer: the next refresh tells. */
        var current = shown(callId);
        if (current && !typing(current)) current.remove();
      }
    );
  }

  function all() {
    return fetchText(withNext(popsUrl)).then(
      function (html) {
        var fresh = parse(html).querySelectorAll("[data-call]");
        var wanted = {};
        Array.prototype.forEach.call(fresh, function (pop) {
          var id = pop.getAttribute("data-call");
          wanted[id] = true;
          var current = shown(id);
          if (typing(current)) return;
          if (current) current.replaceWith(pop);
          else box.appendChild(pop);
        });
        Array.prototype.forEach.call(box.querySelectorAll("[data-call]"), function (pop) {
          if (!wanted[pop.getAttribute("data-call")] && !typing(pop)) pop.remove();
        });
      },
      function () {
        /* Kept as they are until the desk answers again. */
      }
    );
  }

  document.addEventListener("desk:frame", function (event) {
    var frame = event.detail || {};
    if (frame.type === "phone" && typeof frame.call === "number") one(frame.call);
  });
  document.addEventListener("desk:reconnected", all);
  document.addEventListener("click", function (event) {
    var dialUrl = box.getAttribute("data-dial");
    var link = event.target && event.target.closest ? event.target.closest("a.tel-link[data-ticket]") : null;
    if (!link || !dialUrl) return;
    var body = new URLSearchParams();
    body.set("ticket", link.getAttribute("data-ticket"));
    body.set("number", link.getAttribute("data-number"));
    fetch(dialUrl, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { Accept: "application/json", "X-CSRFToken": box.getAttribute("data-csrf") || "" },
      body: body
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(
        function (data) {
          if (data && typeof data.call === "number") one(data.call);
        },
        function () {
          /* Not recorded: "Log this call" beside the link still is. */
        }
      );
  });
  all();
  setInterval(all, REFRESH_MS);
})();
