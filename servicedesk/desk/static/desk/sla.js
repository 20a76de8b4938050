/* SLA countdowns: every 30 seconds, recompute "due in ..." / "overdue by ..."
 * and the urgency class of each element carrying data-sla-due (the due
 * instant) and data-sla-warning (the instant it turns amber), both ISO 8601
 * from the server. The formats come translated from the page (#sla-formats);
 * without this script the server-rendered text stands. */
(function () {
  "use strict";
  var REFRESH_MS = 30000;
  var URGENCIES = ["sla-ok", "sla-warning", "sla-overdue"];

  function formats() {
    var node = document.getElementById("sla-formats");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return null;
    }
  }

  // Python's "%(name)d" / "%(name)02d" / "%(name)s" placeholders.
  function fill(format, values) {
    return format.replace(/%\((\w+)\)(0?\d*)([ds])/g, function (all, name, width, type) {
      var value = String(values[name]);
      var size = parseInt(width, 10) || 0;
      while (type === "d" && value.length < size) value = "0" + value;
      return value;
    });
  }

  function duration(f, minutes) {
    minutes = Math.max(0, minutes);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    if (days) return fill(f.days, { days: days, hours: hours });
    if (hours) return fill(f.hours, { hours: hours, minutes: mins });
    return fill(f.minutes, { minutes: mins });
  }

  function refresh(f) {
    var now = Date.now();
    var nodes = document.querySelectorAll("[data-sla-due]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var due = Date.parse(node.getAttribute("data-sla-due"));
      var warning = Date.parse(node.getAttribute("data-sla-warning"));
      if (isNaN(due)) continue;
      var urgency;
      if (now > due) {
        node.textContent = fill(f.overdue, { time: duration(f, Math.ceil((now - due) / 60000)) });
        urgency = "sla-overdue";
      } else {
        node.textContent = fill(f.due, { time: duration(f, Math.ceil((due - now) / 60000)) });
        urgency = !isNaN(warning) && now >= warning ? "sla-warning" : "sla-ok";
      }
      for (var j = 0; j < URGENCIES.length; j++) node.classList.remove(URGENCIES[j]);
      node.classList.add(urgency);
    }
  }

  function start() {
    var f = formats();
    if (!f) return;
    refresh(f);
    window.setInterval(function () { refresh(f); }, REFRESH_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
