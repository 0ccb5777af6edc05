/* Saved (built) audience detail: the definition as a readable tree, count history (Chart.js) and the
   definition versions with what changed, all from GET /api/v1/audiences/<id>. */
(function () {
  "use strict";
  var B = window.P360Builder;
  var box = document.querySelector("[data-built-audience]");
  if (!box) return;
  var config = { apiUrl: box.getAttribute("data-api-url"), audienceId: box.getAttribute("data-audience-id") };

  function part(name) { return box.querySelector("[data-role=" + name + "]"); }
  function cell(tr, text, cls) { var td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
  function when(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  Promise.all([B.api(config.apiUrl + "fields"), B.api(config.apiUrl + "audiences/" + config.audienceId)]).then(function (answers) {
    part("loading").hidden = true;
    var audience = answers[1];
    if (!audience.ok) {
      part("error").textContent = B.errorMessage(audience, "The audience could not be loaded.");
      part("error").hidden = false;
      return;
    }
    var data = audience.data;
    var catalogue = B.indexCatalogue(answers[0].ok ? answers[0].data : null);
    part("tree").appendChild(B.summaryElement(catalogue, data.tree));
    part("count").textContent = B.formatNumber(data.count);

    var history = data.count_history || [];
    if (history.length && window.Chart) {
      var canvas = part("chart");
      canvas.hidden = false;
      new window.Chart(canvas, {
        type: "line",
        data: {
          labels: history.map(function (p) { return when(p.at); }),
          datasets: [{ label: "Members", data: history.map(function (p) { return p.count; }), borderColor: "#1769c2",
            backgroundColor: "rgba(23,105,194,.12)", fill: true, tension: 0.25, pointRadius: 3 }]
        },
        options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
      var summary = part("chart-summary");
      var last = history[history.length - 1];
      summary.textContent = history.length + (history.length === 1 ? " count" : " counts") + " recorded; latest " + B.formatNumber(last.count) + " members on " + when(last.at) + ".";
    } else {
      part("chart-empty").hidden = false;
    }

    var versions = data.versions || [];
    var body = part("versions");
    versions.forEach(function (v) {
      var tr = document.createElement("tr");
      cell(tr, "v" + v.number + (v.number === data.version ? " (current)" : ""));
      cell(tr, v.changes || "—");
      cell(tr, v.note || "");
      cell(tr, v.created_by || "—");
      cell(tr, when(v.created_at));
      body.appendChild(tr);
    });
    if (!versions.length) part("versions-empty").hidden = false;
  }, function () {
    part("loading").textContent = "The audience could not be loaded (network).";
  });
})();
