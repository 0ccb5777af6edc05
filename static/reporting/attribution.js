/* Attribution page: grouped bar chart of credited conversions per key and model (Chart.js, vendored). */
(function () {
  "use strict";
  var source = document.getElementById("attr-chart-data");
  var canvas = document.getElementById("attr-chart");
  if (!source || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  // Colour-blind-safe palette (Okabe-Ito), one colour per model.
  var colours = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"];
  data.datasets.forEach(function (set, i) {
    set.backgroundColor = colours[i % colours.length];
    set.borderColor = colours[i % colours.length];
    set.borderWidth = 1;
  });
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  new Chart(canvas, {
    type: "bar",
    data: data,
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduceMotion ? false : { duration: 300 },
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { ticks: { autoSkip: false, maxRotation: 45 } },
        y: { beginAtZero: true, title: { display: true, text: "Conversions credited" } }
      },
      plugins: {
        legend: { position: "bottom" },
        tooltip: {
          callbacks: {
            label: function (ctx) { return ctx.dataset.label + ": " + Number(ctx.parsed.y).toFixed(2); }
          }
        }
      }
    }
  });
})();
