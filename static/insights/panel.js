/* Builder insights panel (issue 18): after each successful preview the builder dispatches `p360:preview` with the
   tree; this panel asks the API for the tree's composition and quality (POST audiences/insights) and draws bar
   charts with a table view. Debounced; a newer tree cancels an older request. */
(function () {
  "use strict";
  var B = window.P360Builder;
  var panel = document.getElementById("builder-insights");
  var configNode = document.getElementById("builder-config");
  if (!panel || !configNode || !B) return;
  var config = JSON.parse(configNode.textContent);
  var toggle = document.getElementById("builder-insights-on");
  var timer = null, seq = 0, lastTree = null;

  function role(name) { return panel.querySelector('[data-role="' + name + '"]'); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(field, label, rows) {
    var card = el("section", { "class": "card", "data-chart": field });
    card.appendChild(el("h3", {}, label));
    var top = rows.reduce(function (m, r) { return Math.max(m, r.count); }, 0) || 1;
    var table = el("table", { "class": "bar-chart", role: "img", "aria-label": label + " bar chart" });
    rows.forEach(function (r) {
      var tr = el("tr");
      var name = r.value === null ? "(missing)" : String(r.value);
      tr.appendChild(el("td", { "class": "bar-label", title: name }, name));
      var track = el("td", { "class": "bar-track" });
      track.appendChild(el("span", { "class": "bar" + (r.value === null ? " missing" : ""), style: "width:" + (100 * r.count / top).toFixed(2) + "%" }));
      tr.appendChild(track);
      tr.appendChild(el("td", { "class": "num" }, B.formatNumber(r.count)));
      table.appendChild(tr);
    });
    if (!rows.length) card.appendChild(el("p", { "class": "muted small" }, "No data."));
    else card.appendChild(table);
    var details = el("details");
    details.appendChild(el("summary", {}, "Table view"));
    var t = el("table");
    rows.forEach(function (r) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, r.value === null ? "(missing)" : String(r.value)));
      tr.appendChild(el("td", { "class": "num" }, B.formatNumber(r.count)));
      t.appendChild(tr);
    });
    details.appendChild(t);
    card.appendChild(details);
    var csv = "value,count\n" + rows.map(function (r) {
      var v = r.value === null ? "" : String(r.value);
      if (/^[=+\-@\t\r]/.test(v)) v = "'" + v;  // spreadsheet formula injection
      return '"' + v.replace(/"/g, '""') + '",' + r.count;
    }).join("\n");
    var link = el("a", { "class": "small", download: field + ".csv", href: "data:text/csv;charset=utf-8," + encodeURIComponent(csv) }, "CSV");
    card.appendChild(link);
    return card;
  }

  function render(data) {
    var charts = role("charts");
    charts.textContent = "";
    Object.keys(data.composition).forEach(function (field) {
      charts.appendChild(chart(field, (data.labels || {})[field] || field, data.composition[field]));
    });
    role("quality").hidden = false;
    role("score").textContent = data.quality.score;
    var recs = role("recommendations");
    recs.textContent = "";
    data.quality.recommendations.forEach(function (r) { recs.appendChild(el("li", {}, r)); });
    role("status").textContent = B.formatNumber(data.size) + " people, computed in " + Number(data.elapsed_ms).toFixed(0) + " ms.";
  }

  function load(tree) {
    var mine = ++seq;
    role("status").textContent = "Updating…";
    B.api(config.apiUrl + "audiences/insights", { method: "POST", body: { tree: tree } }).then(function (result) {
      if (mine !== seq) return;
      var error = role("error");
      if (!result.ok) { error.hidden = false; error.textContent = B.errorMessage(result, "The charts could not be computed."); return; }
      error.hidden = true;
      render(result.data);
    }, function () { if (mine === seq) role("status").textContent = "The charts could not be fetched (network)."; });
  }

  document.addEventListener("p360:preview", function (event) {
    lastTree = event.detail && event.detail.tree;
    if (!lastTree || (toggle && !toggle.checked)) return;
    clearTimeout(timer);
    timer = setTimeout(function () { load(lastTree); }, 400);
  });
  if (toggle) toggle.addEventListener("change", function () { if (toggle.checked && lastTree) load(lastTree); });
})();
