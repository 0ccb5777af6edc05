// Import report page: poll the import's status while it runs; show percent, rate and ETA; reload when done.
(function () {
  "use strict";
  var box = document.getElementById("import-status");
  if (!box || box.dataset.finished === "true") return;
  var url = box.dataset.statusUrl;
  function field(name) { return box.querySelector('[data-field="' + name + '"]'); }
  function eta(seconds) {
    if (seconds == null) return "";
    if (seconds < 60) return "about " + Math.max(1, Math.round(seconds)) + " s left";
    return "about " + Math.round(seconds / 60) + " min left";
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        if (s.finished) { window.location.reload(); return; }
        var p = s.progress || {};
        var bar = field("percent"); if (bar) bar.value = p.percent || 0;
        var text = field("progress-text");
        if (text) text.textContent = (p.percent || 0) + "%" + (p.rows_per_second ? " · " + Math.round(p.rows_per_second).toLocaleString() + " lines/s" : "");
        var e = field("eta"); if (e) e.textContent = eta(p.eta_seconds);
        var label = field("status_label"); if (label) label.textContent = s.status_label;
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 500);
})();
