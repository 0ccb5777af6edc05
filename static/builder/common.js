/* P360 audience builder: helpers shared by the builder, detail, templates and overlap pages.
   Plain browser JavaScript (no build step). Exposes window.P360Builder. */
(function () {
  "use strict";

  var OPERATOR_LABELS = {
    eq: "is", neq: "is not", "in": "is any of", not_in: "is none of",
    gt: "is greater than", gte: "is at least", lt: "is less than", lte: "is at most",
    between: "is between", contains: "contains", starts_with: "starts with", ends_with: "ends with",
    is_null: "is empty", is_not_null: "is present"
  };
  var OP_LABELS = { and: "ALL of", or: "ANY of", not: "NOT" };
  var NO_VALUE = { is_null: true, is_not_null: true };
  var LIST_VALUE = { "in": true, not_in: true };

  function csrfToken() {
    var meta = document.querySelector("meta[name=csrf-token]");
    if (meta && meta.getAttribute("content")) return meta.getAttribute("content");
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  /** fetch() against the org API with the session and CSRF token; resolves {ok, status, data}. */
  function api(url, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.method && options.method !== "GET") headers["X-CSRFToken"] = csrfToken();
    return fetch(url, {
      method: options.method || "GET",
      headers: headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
      signal: options.signal
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function errorMessage(result, fallback) {
    var error = result && result.data && result.data.error;
    if (error && error.message) return error.message;
    return fallback || ("The server answered " + (result ? result.status : "nothing") + ".");
  }

  function formatNumber(n) {
    if (n === null || n === undefined || isNaN(n)) return "—";
    return Number(n).toLocaleString("en-US");
  }

  function formatPercent(share) {
    if (share === null || share === undefined || isNaN(share)) return "—";
    var pct = share * 100;
    return (pct > 0 && pct < 0.1 ? "<0.1" : pct.toFixed(pct < 10 ? 1 : 0)) + "%";
  }

  /** A sample table cell: numbers with thousands separators, nothing for missing values. */
  function cell(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return value.toLocaleString("en-US");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function bomboraTopic(field) {
    return typeof field === "string" && field.indexOf("bombora:") === 0 ? field.slice(8) : null;
  }

  // Issue 18: what a Bombora field measures, by its prefix (the catalogue has one pattern entry per prefix).
  var BOMBORA_MEASURES = [
    { prefix: "bombora:", label: "score this week", suffix: "" },
    { prefix: "bombora_max_4w:", label: "highest score in the last 4 weeks", suffix: " · best of 4 weeks" },
    { prefix: "bombora_rise_12w:", label: "score rise over 12 weeks", suffix: " · rise over 12 weeks" },
    { prefix: "bombora_volume:", label: "research volume this week", suffix: " · research volume" },
    { prefix: "bombora_surge:", label: "Bombora's surge flag this week", suffix: " · surge flag" }
  ];

  /** {prefix, topic, measure} of any Bombora field name, or null. */
  function bomboraField(field) {
    if (typeof field !== "string") return null;
    for (var i = 0; i < BOMBORA_MEASURES.length; i++) {
      var m = BOMBORA_MEASURES[i];
      if (field.indexOf(m.prefix) === 0) return { prefix: m.prefix, topic: field.slice(m.prefix.length), measure: m };
    }
    return null;
  }

  /** A field's catalogue entry (Bombora fields share their prefix's pattern entry, e.g. "bombora:<topic>"). */
  function fieldSpec(catalogue, name) {
    if (!name) return null;
    if (catalogue.byName[name]) return catalogue.byName[name];
    var found = bomboraField(name);
    if (found !== null) {
      var fallback = { operators: ["gte", "gt", "lte", "lt", "between", "eq", "is_null", "is_not_null"], type: "bombora" };
      var base = (catalogue.bomboraPatterns || {})[found.prefix] || (found.prefix === "bombora:" ? catalogue.bombora : null) || fallback;
      return Object.assign({}, base, {
        name: name, label: "Intent: " + found.topic + found.measure.suffix, group: "Bombora", topic: found.topic, bomboraPrefix: found.prefix
      });
    }
    return null;
  }

  /** Index the /fields answer: byName, groups in display order, the bombora pattern entry. */
  function indexCatalogue(answer) {
    var catalogue = { byName: {}, fields: [], bombora: null, bomboraPatterns: {}, week: null, topics: 0, audiences: [] };
    var fields = (answer && answer.fields) || [];
    fields.forEach(function (field) {
      var pattern = bomboraField(field.name);
      if (pattern !== null) {  // a pattern ("bombora_max_4w:<topic>"), not a field: topics are searched
        catalogue.bomboraPatterns[pattern.prefix] = field;
        if (pattern.prefix === "bombora:") catalogue.bombora = field;
        return;
      }
      if (field.type === "bombora") { catalogue.bombora = field; return; }
      catalogue.byName[field.name] = field;
      catalogue.fields.push(field);
      if (field.type === "audience") catalogue.audiences = field.values || [];
    });
    if (answer && answer.bombora) { catalogue.week = answer.bombora.week; catalogue.topics = answer.bombora.topics; }
    return catalogue;
  }

  function valueText(catalogue, spec, value) {
    if (value === null || value === undefined) return "";
    var list = Array.isArray(value) ? value : [value];
    return list.map(function (item) {
      if (spec && (spec.type === "audience" || spec.type === "membership")) {
        var found = (spec.values || []).filter(function (a) { return String(a.id) === String(item); })[0];
        return found ? found.name : (spec.type === "audience" ? "audience" : spec.name) + " #" + item;
      }
      if (typeof item === "number") return item.toLocaleString("en-US");
      return String(item);
    }).join(", ");
  }

  /** One line describing a condition, e.g. "Country is any of US, CA". */
  function describeCondition(catalogue, node) {
    var spec = fieldSpec(catalogue, node.field);
    var label = spec ? spec.label : (node.field || "(no field)");
    if (node.placeholder === "topic" || node.field === "bombora:") label = "Intent on a topic you choose";
    var op = OPERATOR_LABELS[node.operator] || node.operator || "";
    if (NO_VALUE[node.operator]) return label + " " + op;
    var value = node.value;
    var text;
    if (node.placeholder === true && (value === null || value === undefined || (Array.isArray(value) && !value.length))) {
      text = "(you choose)";
    } else if (node.operator === "between" && Array.isArray(value)) {
      text = valueText(catalogue, spec, value[0]) + " and " + valueText(catalogue, spec, value[1]);
    } else if (value === null || value === undefined) {
      text = "…";
    } else {
      text = valueText(catalogue, spec, value);
    }
    return label + " " + op + " " + text;
  }

  /** A nested <ul> summary of a logic tree (for the detail and template pages). */
  function summaryElement(catalogue, tree) {
    function build(node) {
      var li = document.createElement("li");
      if (node && node.op) {
        var head = document.createElement("span");
        head.className = "tree-op tree-op-" + node.op;
        head.textContent = OP_LABELS[node.op] || node.op;
        li.appendChild(head);
        var ul = document.createElement("ul");
        (node.children || []).forEach(function (child) { ul.appendChild(build(child)); });
        li.appendChild(ul);
      } else if (node) {
        li.textContent = describeCondition(catalogue, node);
      }
      return li;
    }
    var root = document.createElement("ul");
    root.className = "tree-summary";
    if (tree) root.appendChild(build(tree));
    return root;
  }

  window.P360Builder = {
    OPERATOR_LABELS: OPERATOR_LABELS, OP_LABELS: OP_LABELS, NO_VALUE: NO_VALUE, LIST_VALUE: LIST_VALUE,
    api: api, cell: cell, csrfToken: csrfToken, errorMessage: errorMessage, formatNumber: formatNumber, formatPercent: formatPercent,
    fieldSpec: fieldSpec, indexCatalogue: indexCatalogue, describeCondition: describeCondition,
    summaryElement: summaryElement, bomboraTopic: bomboraTopic,
    bomboraField: bomboraField, BOMBORA_MEASURES: BOMBORA_MEASURES
  };
})();
