/* Live workspace: one WebSocket to /ws/desk/ per page (docs/architecture.md,
 * "Live updates"). The server only says what changed; the page reads it again
 * from the server:
 *  - the inbox replaces its results (#inbox-results) with the current ones;
 *  - a ticket page replaces its conversation, summary and SLA panel when its
 *    ticket changed, never the reply form nor the properties (the form keeps
 *    the version it was loaded with, so saving over a newer change is refused
 *    by the version check with the conflict message);
 *  - the bell in the header shows the unread count the server sends ("bell").
 * On a ticket page it also tells the server the agent views the ticket (on
 * opening and every 20 s) and types (at most every 3 s), and shows who else
 * views and types ("Also viewing", "... is typing"; text, never HTML).
 * The socket reconnects by itself with growing, jittered delays. On every
 * connection it asks for everything changed since the last change it saw, or
 * since the page was read ("resume"), page after page; on a reconnection it
 * also reads the page once again, since a change committed late, with an
 * older event id than the cursor, is not in the resume. Pushes are sent at
 * most once (a blip of the channel layer loses what was in flight), so every
 * ping also asks for what changed since the cursor. Frames of other kinds are
 * handed on as "desk:frame" events, and a reconnection as "desk:reconnected",
 * for the scripts of other parts of the page (phone/pop.js). Translated strings
 * come from the page (#live-strings). Without this script the pages work as before. */
(function () {
  "use strict";
  var PING_MS = 30000;
  var VIEW_MS = 20000;
  var VIEWER_TTL_MS = 45000;
  var TYPING_EVERY_MS = 3000;
  var TYPING_SHOWN_MS = 6000;
  var MAX_DELAY_MS = 30000;
  var REFRESH_GAP_MS = 1500;
  var FORBIDDEN = 4403;

  var root = document.documentElement;
  var script = document.currentScript;
  // The newest change when the page was read: one made before the socket opens is caught up too.
  var rendered = script ? Number(script.getAttribute("data-cursor")) : NaN;
  var cursor = isNaN(rendered) ? null : rendered;
  var attempts = 0;
  var opened = false;
  var timers = [];
  var current = null;

  var strings = {};
  try {
    strings = JSON.parse(document.getElementById("live-strings").textContent);
  } catch (e) {
    /* The page carries none: presence and the bell's label stay as rendered. */
  }

  function format(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, function (all, key) {
      return key in values ? String(values[key]) : all;
    });
  }

  function streamUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/desk/";
  }

  function announce(text) {
    var region = document.getElementById("live-status");
    if (region && text) region.textContent = text;
  }

  function ticketReference() {
    var title = document.querySelector("[data-live-reference]");
    return title ? title.getAttribute("data-live-reference") : null;
  }

  function connect() {
    var socket;
    try {
      socket = new WebSocket(streamUrl());
    } catch (e) {
      return;
    }
    socket.onopen = function () {
      var reconnected = opened;
      opened = true;
      attempts = 0;
      current = socket;
      socket.reconnected = reconnected;
      root.setAttribute("data-live", "connected");
      timers.push(
        window.setInterval(function () {
          send(socket, { type: "ping" });
          if (cursor !== null) send(socket, { type: "resume", after: cursor });
        }, PING_MS)
      );
      var reference = ticketReference();
      if (reference) {
        send(socket, { type: "view", ticket: reference });
        timers.push(
          window.setInterval(function () {
            send(socket, { type: "view", ticket: reference });
          }, VIEW_MS)
        );
      }
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(socket, frame);
    };
    socket.onclose = function (event) {
      timers.forEach(window.clearInterval);
      timers = [];
      current = null;
      // Whoever was shown is unknown now; the next connection's view asks again.
      presence.viewers = [];
      presence.typing = {};
      presenceShow();
      if (event.code === FORBIDDEN) {
        root.setAttribute("data-live", "off");
        return;
      }
      root.setAttribute("data-live", "reconnecting");
      var delay = Math.min(MAX_DELAY_MS, 1000 * Math.pow(2, attempts));
      attempts += 1;
      window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
    };
  }

  function send(socket, frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function handle(socket, frame) {
    if (frame.type === "hello") {
      if (socket.reconnected) document.dispatchEvent(new CustomEvent("desk:reconnected"));
      if (socket.reconnected && cursor !== null) {
        // Back after a drop: what changed since the cursor, and the page as it is now.
        send(socket, { type: "resume", after: cursor });
        changed(null);
      } else if (cursor === null) {
        cursor = frame.cursor;
      } else if (frame.cursor > cursor) {
        // What changed since the page was read comes from the database.
        send(socket, { type: "resume", after: cursor });
      }
    } else if (frame.type === "changed") {
      if (typeof frame.cursor === "number" && frame.cursor > cursor) cursor = frame.cursor;
      if (frame.tickets && frame.tickets.length) changed(frame.tickets);
      if (frame.more) send(socket, { type: "resume", after: cursor });
    } else if (frame.type === "bell") {
      bell(frame.unread);
    } else if (frame.type === "viewers" && frame.ticket === ticketReference()) {
      presence.viewers = frame.viewers || [];
      presence.viewersAt = Date.now();
      presenceShow();
    } else if (frame.type === "typing" && frame.ticket === ticketReference() && frame.agent) {
      presence.typing[frame.agent.id] = { name: frame.agent.name, until: Date.now() + TYPING_SHOWN_MS };
      presenceShow();
    } else {
      // Frames of other parts of the workspace (a call's screen pop) go to their own scripts.
      document.dispatchEvent(new CustomEvent("desk:frame", { detail: frame }));
    }
  }

  // --- The bell -----------------------------------------------------------------

  function bell(unread) {
    var link = document.getElementById("desk-bell");
    if (!link || typeof unread !== "number" || unread < 0) return;
    var badge = link.querySelector(".badge");
    if (unread === 0) {
      if (badge) badge.remove();
    } else {
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "badge";
        link.appendChild(document.createTextNode(" "));
        link.appendChild(badge);
      }
      badge.textContent = String(unread);
      badge.setAttribute("data-unread", String(unread));
    }
    link.classList.toggle("desk-bell-unread", unread > 0);
    // English and Chinese, the desk's languages, need only "one" and "other".
    var label = format(unread === 1 ? strings.bellOne : strings.bellOther, { counter: unread });
    if (label) {
      link.setAttribute("title", label);
      link.setAttribute("aria-label", label);
    }
  }

  // --- Who else views and types (ticket page) ---------------------------------------

  var presence = { viewers: [], viewersAt: 0, typing: {} };

  function names(list) {
    return list.join(strings.separator || ", ");
  }

  function show(id, text) {
    var region = document.getElementById(id);
    // Unchanged text is not written again, so a screen reader hears each change once.
    if (region && region.textContent !== text) region.textContent = text;
  }

  function presenceShow() {
    var now = Date.now();
    if (presence.viewersAt && now - presence.viewersAt > VIEWER_TTL_MS) presence.viewers = [];
    var typing = [];
    Object.keys(presence.typing).forEach(function (id) {
      if (presence.typing[id].until < now) delete presence.typing[id];
      else typing.push(presence.typing[id].name);
    });
    var viewing = presence.viewers.map(function (agent) {
      return agent.name;
    });
    show("ticket-viewers", viewing.length ? format(strings.alsoViewing, { names: names(viewing) }) : "");
    var typingText = "";
    if (typing.length === 1) typingText = format(strings.typingOne, { name: typing[0] });
    else if (typing.length > 1) typingText = format(strings.typingMany, { names: names(typing) });
    show("ticket-typing", typingText);
  }

  var lastTyping = 0;

  function typed(event) {
    var field = event.target;
    var form = document.querySelector("[data-live-reference]") && field && field.form;
    if (!form || form.id !== "reply-form" || field.tagName !== "TEXTAREA") return;
    var now = Date.now();
    if (now - lastTyping < TYPING_EVERY_MS) return;
    lastTyping = now;
    send(current, { type: "typing", ticket: ticketReference() });
  }

  // --- Reading the page again ---------------------------------------------------------

  // Changes come in bursts: the page is read again at most every REFRESH_GAP_MS.
  var pending = null;
  var pendingAll = false;
  var timer = null;
  var lastRefresh = 0;

  function changed(tickets) {
    if (tickets === null) pendingAll = true;
    else pending = (pending || []).concat(tickets);
    if (timer) return;
    var wait = Math.max(0, lastRefresh + REFRESH_GAP_MS - Date.now());
    timer = window.setTimeout(function () {
      var batch = pendingAll ? null : pending;
      pending = null;
      pendingAll = false;
      timer = null;
      lastRefresh = Date.now();
      refresh(batch);
    }, wait);
  }

  // What a refresh may replace; never what contains the forms the agent works in.
  var KEPT = "#reply-form, #properties, textarea, input[type=file]";

  function refresh(tickets) {
    var inbox = document.getElementById("inbox-results");
    var title = document.querySelector("[data-live-ticket]");
    var selectors = null;
    if (inbox) {
      selectors = ["#inbox-results"];
    } else if (title) {
      var id = Number(title.getAttribute("data-live-ticket"));
      var mine =
        tickets === null ||
        tickets.some(function (t) {
          return t.id === id;
        });
      if (!mine) return;
      selectors = [".ticket-summary", "section.thread", "#sla-panel"];
    }
    if (!selectors) return;
    // After a reconnection the bell may be behind too.
    if (tickets === null) selectors.push("#desk-bell");
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        selectors.forEach(function (selector) {
          var now = document.querySelector(selector);
          var then = fresh.querySelector(selector);
          if (!now || !then || now.matches(KEPT) || now.querySelector(KEPT)) return;
          now.replaceWith(document.importNode(then, true));
        });
        var region = document.getElementById("live-status");
        announce(region && region.getAttribute("data-updated"));
        document.dispatchEvent(new CustomEvent("desk:refreshed", { detail: tickets }));
      })
      .catch(function () {
        /* The next change, or a reload, reads the page again. */
      });
  }

  if ("WebSocket" in window && "fetch" in window) {
    connect();
    document.addEventListener("input", typed);
    if (ticketReference()) {
      window.setInterval(presenceShow, 1000);
      window.addEventListener("pagehide", function () {
        send(current, { type: "leave", ticket: ticketReference() });
      });
    }
  }
})();
