// Follow an import once a second; at the end, reload for the full report.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var bar = document.getElementById("progress-bar");
  function width(percent) { bar.style.width = percent + "%"; }  // CSSOM: allowed by a strict CSP
  function set(id, value) { document.getElementById(id).textContent = value; }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (p) {
        width(p.percent);
        box.querySelector("[role=progressbar]").setAttribute("aria-valuenow", p.processed_rows);
        set("progress-processed", p.processed_rows);
        set("progress-percent", p.percent);
        set("count-created", p.created);
        set("count-updated", p.updated);
        set("count-rejected", p.rejected_count);
        if (p.processed_rows > 0) { set("progress-label", "Importing…"); }
        if (p.finished) { window.location.reload(); } else { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  width(bar.dataset.percent || 0);
  if (box.dataset.status === "done" || box.dataset.status === "failed") { return; }
  window.setTimeout(poll, 1000);
})();
