/* The inbox's selection and bulk bar, and the progress of bulk jobs (docs/inbox.md).
 * Without this script every form still works: rows are ticked one by one and
 * the scope is chosen in the bar; a job's progress shows on reload.
 *  - "Select all on this page" ticks every row; the count of ticked rows is shown.
 *  - Ticked rows survive the live refresh of #inbox-results (static/desk/live.js).
 *  - Only the chosen action's own fields are shown.
 *  - A running job's progress element follows the job: from the "bulk_job"
 *    frames of the live socket, and from /desk/bulk/jobs/<id>/ every few seconds;
 *    when it ends the jobs panel and the list are read again from the server.
 *  - The views' counts are read again (/desk/views/counts/) when the list was refreshed.
 * Hooks for keyboard shortcuts: rows are tr[data-row], their checkboxes .bulk-select. */
(function () {
  "use strict";
  var POLL_MS = 3000;
  var ticked = {};
  var polling = {};

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#inbox-results input.bulk-select"));
  }

  function remember() {
    rows().forEach(function (box) {
      if (box.checked) ticked[box.value] = true;
      else delete ticked[box.value];
    });
  }

  function show() {
    var boxes = rows();
    var count = 0;
    boxes.forEach(function (box) {
      var row = box.closest("tr");
      if (row) row.classList.toggle("bulk-selected", box.checked);
      if (box.checked) count += 1;
    });
    var total = Object.keys(ticked).length;
    var counter = document.getElementById("bulk-selected-count");
    if (counter) counter.textContent = "(" + total + ")";
    var all = document.getElementById("bulk-select-page");
    if (all) {
      all.hidden = false;
      all.checked = boxes.length > 0 && count === boxes.length;
      all.indeterminate = count > 0 && count < boxes.length;
    }
  }

  function restore() {
    rows().forEach(function (box) {
      box.checked = !!ticked[box.value];
    });
    var results = document.getElementById("inbox-results");
    var label = document.getElementById("bulk-matching-label");
    var fresh = results && results.getAttribute("data-matching-label");
    if (label && fresh) label.textContent = fresh;
    show();
  }

  function actionFields() {
    var select = document.getElementById("bulk-action");
    if (!select) return;
    Array.prototype.forEach.call(document.querySelectorAll("#bulk-form .bulk-param"), function (field) {
      field.hidden = field.getAttribute("data-action") !== select.value;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target) return;
    if (target.id === "bulk-select-page") {
      rows().forEach(function (box) {
        box.checked = target.checked;
      });
      remember();
      var scope = document.getElementById("bulk-scope-selected");
      if (scope) scope.checked = true;
      show();
    } else if (target.classList && target.classList.contains("bulk-select")) {
      remember();
      var selected = document.getElementById("bulk-scope-selected");
      if (selected && target.checked) selected.checked = true;
      show();
    } else if (target.id === "bulk-action") {
      actionFields();
    }
  });

  // --- Jobs -----------------------------------------------------------------------

  var strings = {};
  try {
    strings = JSON.parse(document.getElementById("inbox-strings").textContent);
  } catch (e) {
    /* The page carries none: the figures stay as rendered until the panel is read again. */
  }

  function format(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, function (all, key) {
      return key in values ? String(values[key]) : all;
    });
  }

  function jobShow(job) {
    var box = document.getElementById("bulk-job-" + job.id);
    if (!box) {
      reread();
      return;
    }
    var progress = document.getElementById("bulk-job-" + job.id + "-progress");
    if (progress) {
      progress.max = Math.max(job.total, 1);
      progress.value = job.done;
      progress.textContent = job.done + " / " + job.total;
    }
    var status = document.getElementById("bulk-job-" + job.id + "-status");
    if (status) status.textContent = job.status_label;
    var figures = document.getElementById("bulk-job-" + job.id + "-figures");
    if (figures && strings.figures) figures.textContent = format(strings.figures, job);
    if (!job.active && box.getAttribute("data-active") === "1") {
      box.setAttribute("data-active", "0");
      reread();
    }
  }

  function poll(box) {
    var id = box.getAttribute("data-job");
    if (polling[id]) return;
    polling[id] = window.setInterval(function () {
      var current = document.getElementById("bulk-job-" + id);
      if (!current || current.getAttribute("data-active") !== "1") {
        window.clearInterval(polling[id]);
        delete polling[id];
        return;
      }
      fetch(current.getAttribute("data-status-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (body && body.job) jobShow(body.job);
        })
        .catch(function () {
          /* The next poll, or the live socket, tells. */
        });
    }, POLL_MS);
  }

  function watchJobs() {
    Array.prototype.forEach.call(document.querySelectorAll("#bulk-jobs .bulk-job[data-active='1']"), poll);
  }

  // The jobs panel, the list and the views' counts as the server has them now.
  function reread() {
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["#bulk-jobs", "#inbox-results"].forEach(function (selector) {
          var now = document.querySelector(selector);
          var then = fresh.querySelector(selector);
          if (now && then) now.replaceWith(document.importNode(then, true));
        });
        watchJobs();
        restore();
        counts();
      })
      .catch(function () {
        /* A reload shows it. */
      });
  }

  // --- The views' counts ------------------------------------------------------------

  var countsWaiting = null;

  function counts() {
    var aside = document.getElementById("inbox-views");
    if (!aside || countsWaiting) return;
    countsWaiting = window.setTimeout(function () {
      countsWaiting = null;
      fetch(aside.getAttribute("data-counts-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (!body || !body.counts) return;
          Array.prototype.forEach.call(aside.querySelectorAll("[data-count-for]"), function (span) {
            var value = body.counts[span.getAttribute("data-count-for")];
            if (typeof value === "number") {
              // A count past the cap is "more than": shown as "10000+".
              var cap = parseInt(aside.getAttribute("data-count-cap"), 10);
              span.textContent = cap && value > cap ? cap + "+" : String(value);
              if (strings.ticketsOne && strings.ticketsOther) {
                span.setAttribute("aria-label", format(value === 1 ? strings.ticketsOne : strings.ticketsOther, { counter: value }));
              }
            }
          });
        })
        .catch(function () {
          /* The next change tells again. */
        });
    }, 300);
  }

  document.addEventListener("desk:refreshed", function () {
    restore();
    counts();
  });
  document.addEventListener("desk:reconnected", counts);
  document.addEventListener("desk:frame", function (event) {
    var frame = event.detail || {};
    if (frame.type === "bulk_job" && frame.job) jobShow(frame.job);
  });

  function start() {
    remember();
    show();
    actionFields();
    watchJobs();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
