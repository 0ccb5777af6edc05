/* Overlap page: a Venn-style SVG (circles with exclusive region counts) and the intersection table. */
(function () {
  "use strict";
  var B = window.P360Builder;
  var config = JSON.parse(document.getElementById("builder-config").textContent);
  var COLORS = ["#1769c2", "#d9480f", "#2f9e44"];
  var SVG = "http://www.w3.org/2000/svg";

  var form = document.querySelector("[data-overlap-form]");
  if (form) {
    form.addEventListener("change", function () {
      var boxes = form.querySelectorAll("input[name=ids]");
      var picked = form.querySelectorAll("input[name=ids]:checked").length;
      boxes.forEach(function (box) { box.disabled = !box.checked && picked >= 3; });
    });
    form.dispatchEvent(new Event("change"));
    form.addEventListener("submit", function (e) {
      var picked = form.querySelectorAll("input[name=ids]:checked");
      var error = form.querySelector("[data-role=pick-error]");
      if (picked.length < 2 || picked.length > 3) { e.preventDefault(); error.hidden = false; return; }
      // One ?ids=1,2,3 parameter, the API's spelling.
      e.preventDefault();
      var ids = Array.prototype.map.call(picked, function (box) { return box.value; }).join(",");
      window.location.assign(window.location.pathname + "?ids=" + ids);
    });
  }

  var box = document.querySelector("[data-overlap]");
  if (!box || config.selected.length < 2) return;

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function key(ids) { return ids.map(Number).sort(function (a, b) { return a - b; }).join(","); }

  function draw(data) {
    var audiences = data.audiences;
    var regions = {};
    (data.regions || []).forEach(function (r) { regions[key(r.ids)] = r.count; });
    var n = audiences.length;
    var width = 520, height = n === 3 ? 460 : 340;
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, class: "venn", role: "img",
      "aria-label": "Venn diagram of " + audiences.map(function (a) { return a.name; }).join(", ") });
    var centres = n === 2 ? [[190, 170], [330, 170]] : [[200, 170], [320, 170], [260, 275]];
    var r = n === 2 ? 130 : 120;
    audiences.forEach(function (a, i) {
      svg.appendChild(el("circle", { cx: centres[i][0], cy: centres[i][1], r: r, fill: COLORS[i], "fill-opacity": 0.18, stroke: COLORS[i], "stroke-width": 2 }));
    });
    var ids = audiences.map(function (a) { return a.id; });
    // Where each exclusive region's count is written.
    var spots = n === 2
      ? [[[0], 125, 175], [[1], 395, 175], [[0, 1], 260, 175]]
      : [[[0], 150, 140], [[1], 370, 140], [[2], 260, 345], [[0, 1], 260, 125], [[0, 2], 205, 245], [[1, 2], 315, 245], [[0, 1, 2], 260, 200]];
    spots.forEach(function (spot) {
      var regionIds = spot[0].map(function (i) { return ids[i]; });
      var count = regions[key(regionIds)] || 0;
      svg.appendChild(el("text", { x: spot[1], y: spot[2], "text-anchor": "middle", "data-region": key(regionIds) }, B.formatNumber(count)));
    });
    var labels = n === 2 ? [[110, 22], [410, 22]] : [[120, 30], [400, 30], [260, 445]];
    audiences.forEach(function (a, i) {
      var name = a.name.length > 28 ? a.name.slice(0, 27) + "…" : a.name;
      svg.appendChild(el("text", { x: labels[i][0], y: labels[i][1], "text-anchor": "middle", class: "venn-name", fill: COLORS[i] }, name));
    });
    var holder = box.querySelector("[data-role=venn]");
    holder.textContent = "";
    holder.appendChild(svg);
    tables(audiences, regions, data.intersection);
  }

  function tables(audiences, regions, intersection) {
    var ids = audiences.map(function (a) { return a.id; });
    var names = {}; audiences.forEach(function (a, i) { names[a.id] = { name: a.name, color: COLORS[i] }; });
    var union = 0; Object.keys(regions).forEach(function (k) { union += regions[k]; });
    var html = '<table data-testid="overlap-table"><thead><tr><th scope="col">Audience</th><th scope="col" class="num">People</th></tr></thead><tbody>';
    audiences.forEach(function (a) {
      html += "<tr><td>" + swatch(names[a.id].color) + esc(a.name) + '</td><td class="num">' + B.formatNumber(a.count) + "</td></tr>";
    });
    html += '</tbody></table><h3 class="small muted">Exclusive regions</h3><table data-testid="region-table"><thead><tr><th scope="col">In</th><th scope="col">Not in</th><th scope="col" class="num">People</th><th scope="col" class="num">Share</th></tr></thead><tbody>';
    var combos = [];
    for (var mask = 1; mask < (1 << ids.length); mask++) {
      var inIds = ids.filter(function (_, i) { return mask & (1 << i); });
      combos.push(inIds);
    }
    combos.sort(function (a, b) { return b.length - a.length; });
    combos.forEach(function (inIds) {
      var outIds = ids.filter(function (id) { return inIds.indexOf(id) < 0; });
      var count = regions[key(inIds)] || 0;
      html += "<tr><td>" + inIds.map(function (id) { return swatch(names[id].color) + esc(names[id].name); }).join(" + ") +
        "</td><td>" + (outIds.length ? outIds.map(function (id) { return esc(names[id].name); }).join(", ") : "—") +
        '</td><td class="num">' + B.formatNumber(count) + '</td><td class="num">' + (union ? B.formatPercent(count / union) : "—") + "</td></tr>";
    });
    html += '</tbody></table><p data-testid="intersection">In all ' + ids.length + ": <strong>" + B.formatNumber(intersection) +
      "</strong> · in any: <strong>" + B.formatNumber(union) + "</strong></p>";
    box.querySelector("[data-role=tables]").innerHTML = html;
  }

  function swatch(color) { return '<span class="swatch" aria-hidden="true" style="background:' + color + '"></span>'; }
  function esc(text) { var d = document.createElement("div"); d.textContent = text; return d.innerHTML; }

  B.api(config.apiUrl + "audiences/overlap?ids=" + config.selected.join(",")).then(function (result) {
    box.querySelector("[data-role=loading]").hidden = true;
    if (!result.ok) {
      var err = box.querySelector("[data-role=error]");
      err.textContent = B.errorMessage(result, "The overlap could not be computed.");
      err.hidden = false;
      return;
    }
    draw(result.data);
  }, function () {
    box.querySelector("[data-role=loading]").textContent = "The overlap could not be computed (network).";
  });
})();
