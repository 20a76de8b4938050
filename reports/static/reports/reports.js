// Follows a report job on the dashboard: polls the job API, moves the
// progress bar, and reloads the page (the refresh link) once it is done.
(function () {
  "use strict";
  function follow(section) {
    var url = section.getAttribute("data-job-url");
    var refresh = section.getAttribute("data-refresh-url");
    var bar = section.querySelector("progress");
    if (!url || !bar) { return; }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (job) {
          if (!job) { return; }
          bar.value = job.progress;
          bar.textContent = job.progress + " %";
          if (job.status === "done" || job.status === "failed") {
            window.location.assign(refresh);
          } else {
            window.setTimeout(poll, 1500);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var sections = document.querySelectorAll(".report-job[data-job-url]");
    for (var i = 0; i < sections.length; i++) { follow(sections[i]); }
  });
})();
