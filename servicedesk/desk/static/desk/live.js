/* Live workspace: one WebSocket to /ws/desk/ per page (docs/architecture.md,
 * "Live updates"). The server only says which tickets changed; the page reads
 * them again from the server:
 *  - the inbox replaces its results (#inbox-results) with the current ones;
 *  - a ticket page replaces its conversation, summary and SLA panel when its
 *    ticket changed, never the forms (their version check keeps a stale
 *    field from overwriting a newer one).
 * The socket reconnects by itself with growing, jittered delays; on every
 * connection it asks for everything changed since the last change it saw, or
 * since the page was read ("resume"), page after page. Without this script the pages work as before. */
(function () {
  "use strict";
  var PING_MS = 30000;
  var MAX_DELAY_MS = 30000;
  var REFRESH_GAP_MS = 1500;
  var FORBIDDEN = 4403;

  var root = document.documentElement;
  var script = document.currentScript;
  // The newest change when the page was read: one made before the socket opens is caught up too.
  var rendered = script ? Number(script.getAttribute("data-cursor")) : NaN;
  var cursor = isNaN(rendered) ? null : rendered;
  var attempts = 0;
  var pinger = null;

  function streamUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/desk/";
  }

  function announce(text) {
    var region = document.getElementById("live-status");
    if (region && text) region.textContent = text;
  }

  function connect() {
    var socket;
    try {
      socket = new WebSocket(streamUrl());
    } catch (e) {
      return;
    }
    socket.onopen = function () {
      attempts = 0;
      root.setAttribute("data-live", "connected");
      pinger = window.setInterval(function () {
        send(socket, { type: "ping" });
      }, PING_MS);
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
      window.clearInterval(pinger);
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
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function handle(socket, frame) {
    if (frame.type === "hello") {
      if (cursor === null) {
        cursor = frame.cursor;
      } else if (frame.cursor > cursor) {
        // What changed since the page was read, or while the socket was down, comes from the database.
        send(socket, { type: "resume", after: cursor });
      }
    } else if (frame.type === "changed") {
      if (typeof frame.cursor === "number" && frame.cursor > cursor) cursor = frame.cursor;
      if (frame.tickets && frame.tickets.length) changed(frame.tickets);
      if (frame.more) send(socket, { type: "resume", after: cursor });
    }
  }

  // Changes come in bursts: the page is read again at most every REFRESH_GAP_MS.
  var pending = null;
  var timer = null;
  var lastRefresh = 0;

  function changed(tickets) {
    pending = (pending || []).concat(tickets);
    if (timer) return;
    var wait = Math.max(0, lastRefresh + REFRESH_GAP_MS - Date.now());
    timer = window.setTimeout(function () {
      var batch = pending;
      pending = null;
      timer = null;
      lastRefresh = Date.now();
      refresh(batch);
    }, wait);
  }

  function refresh(tickets) {
    var inbox = document.getElementById("inbox-results");
    var title = document.querySelector("[data-live-ticket]");
    var selectors = null;
    if (inbox) {
      selectors = ["#inbox-results"];
    } else if (title) {
      var id = Number(title.getAttribute("data-live-ticket"));
      var mine = tickets.some(function (t) {
        return t.id === id;
      });
      if (!mine) return;
      selectors = [".ticket-summary", "section.thread", "#sla-panel"];
    }
    if (!selectors) return;
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
          if (now && then) now.replaceWith(document.importNode(then, true));
        });
        var region = document.getElementById("live-status");
        announce(region && region.getAttribute("data-updated"));
        document.dispatchEvent(new CustomEvent("desk:refreshed", { detail: tickets }));
      })
      .catch(function () {
        /* The next change, or a reload, reads the page again. */
      });
  }

  if ("WebSocket" in window && "fetch" in window) connect();
})();
