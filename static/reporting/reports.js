/* Report pages: the custom-range switch and the Chart.js charts (data from #report-chart-data). */
(function () {
  "use strict";
  var preset = document.getElementById("range-preset");
  ["range-start", "range-end"].forEach(function (id) {
    var input = document.getElementById(id);
    if (input && preset) input.addEventListener("change", function () { preset.value = "custom"; });
  });
  var source = document.getElementById("report-chart-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var labels = data.trend.map(function (p) { return p.date; });
  var num = function (v) { return v === null ? null : Number(v); };
  var blue = "#1769c2", green = "#177245", palette = ["#1769c2", "#177245", "#b54708", "#7a5af8", "#c11574", "#5b6478"];
  Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;  /* figures appear at once: calmer, and nothing moves for reduced-motion users */
  var money = document.getElementById("chart-money");
  if (money) new Chart(money, {
    type: "line",
    data: { labels: labels, datasets: [
      { label: "Spend", data: data.trend.map(function (p) { return num(p.spend); }), borderColor: blue, backgroundColor: blue, tension: .25, pointRadius: 2 },
      { label: "Revenue", data: data.trend.map(function (p) { return num(p.conversion_revenue); }), borderColor: green, backgroundColor: green, tension: .25, pointRadius: 2 }
    ] },
    options: { interaction: { mode: "index", intersect: false }, scales: { y: { beginAtZero: true } } }
  });
  var conv = document.getElementById("chart-conversions");
  if (conv) new Chart(conv, {
    type: "bar",
    data: { labels: labels, datasets: [{ label: "Conversions", data: data.trend.map(function (p) { return p.conversions; }), backgroundColor: "#7a5af8" }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
  });
  var src = document.getElementById("chart-sources");
  if (src) new Chart(src, {
    type: "doughnut",
    data: { labels: data.sources.map(function (s) { return s.source; }), datasets: [{ data: data.sources.map(function (s) { return num(s.spend); }), backgroundColor: palette }] },
    options: { plugins: { legend: { position: "bottom" } } }
  });
})();
