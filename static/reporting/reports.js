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
  /* Axis labels read "6 Dec" (the year only when the range spans two years), not ISO "2026-12-06". */
  var spansYears = data.trend.length > 1 && data.trend[0].date.slice(0, 4) !== data.trend[data.trend.length - 1].date.slice(0, 4);
  var dayLabel = new Intl.DateTimeFormat(undefined, spansYears ? { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" } : { day: "numeric", month: "short", timeZone: "UTC" });
  var labels = data.trend.map(function (p) { return dayLabel.format(new Date(p.date + "T00:00:00Z")); });
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
    data: { labels: data.sources.map(function (s) { return s.label || s.source; }), datasets: [{ data: data.sources.map(function (s) { return num(s.spend); }), backgroundColor: palette }] },
    options: { plugins: { legend: { position: "bottom" } } }
  });
})();
