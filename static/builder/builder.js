/* P360 visual audience builder (issue 5, item 7).

   The logic tree is rendered by a small hand-written renderer (Alpine has no recursive templates) into
   #builder-tree, which Alpine ignores (x-ignore); SortableJS moves nodes between groups. Alpine drives the
   panels around it (count, sample, save, templates) through Alpine.store("builder").

   State: one tree of nodes with stable client ids:
     group     {id, kind: "group", op: "and"|"or"|"not", children: [...]}
     condition {id, kind: "condition", field, operator, value, placeholder?}
   Every structural change goes through change(), which records an undo snapshot, re-renders and schedules a
   preview (debounced 300 ms). The preview tree leaves out incomplete conditions and empty groups; `pathToId`
   maps the API's node paths ("", "children[0]", "children[1].children[0]") back to the nodes on screen. */
(function () {
  "use strict";

  var B = window.P360Builder;
  var DEBOUNCE_MS = 300;
  var FIELDS_RETRY_MS = 3000; // while the catalogue answers from a stale generation (a rebuild is running)
  var SURGE = 60;
  var SAMPLE_COLUMNS = ["email", "first_name", "last_name", "job_title", "company_name", "domain", "industry",
    "revenue", "employee_count", "country", "region", "city"];

  var config = JSON.parse(document.getElementById("builder-config").textContent);
  var treeEl = document.getElementById("builder-tree");
  var announcer = document.getElementById("builder-announcer");

  var uid = 0;
  var root = group("and", []);
  var catalogue = B.indexCatalogue(null);
  var undoStack = [];
  var redoStack = [];
  var counts = {};         // node id -> {count, running} from the last preview
  var problems = {};       // node id -> message (incomplete or rejected by the API)
  var pathToId = {};       // API path -> node id (from the last preview tree)
  var sortables = [];
  var previewTimer = null;
  var previewSeq = 0;
  var previewAbort = null;
  var editSnapshot = null; // the tree before the value being typed, for undo
  var focusAfterRender = null;

  function newId() { uid += 1; return "n" + uid; }
  function group(op, children) { return { id: newId(), kind: "group", op: op, children: children }; }
  function condition(field, operator, value) {
    return { id: newId(), kind: "condition", field: field || "", operator: operator || "", value: value === undefined ? null : value };
  }

  // ---- the store the Alpine panels read -------------------------------------------------------------
  function store() { return window.Alpine ? window.Alpine.store("builder") : fallbackStore; }
  var fallbackStore = {};
  var initialStore = {
    ready: false, loading: false, count: null, universe: null, uid2Ready: null, uid2Share: null, elapsedMs: null,
    sample: [], sampleColumns: [], status: "", error: "", canUndo: false, canRedo: false, empty: true,
    incomplete: 0, saving: false, saveError: "", saveMessage: "", templates: [], templatesError: "",
    templatesLoading: false, audienceId: config.audienceId, name: "", description: "", note: "",
    templateName: "", templateDescription: "", week: null
  };

  // ---- tree helpers ---------------------------------------------------------------------------------
  function find(id, node, parent) {
    node = node || root;
    if (node.id === id) return { node: node, parent: parent || null };
    if (node.kind === "group") {
      for (var i = 0; i < node.children.length; i++) {
        var hit = find(id, node.children[i], node);
        if (hit) return hit;
      }
    }
    return null;
  }

  function fromApi(node) {
    if (node && Array.isArray(node.children)) {
      return group(node.op === "or" || node.op === "not" ? node.op : "and", node.children.map(fromApi));
    }
    var made = condition(node && node.field, node && node.operator, node ? node.value : null);
    if (node && node.placeholder) made.placeholder = true;
    // A template's "choose a topic" placeholder ("field": "bombora:"): no field yet, but keep its score rule.
    if (node && (node.placeholder === "topic" || node.field === "bombora:")) { made.field = ""; made.wants = "bombora"; }
    return made;
  }

  function loadTree(tree) {
    var loaded = tree ? fromApi(tree) : group("and", []);
    if (loaded.kind !== "group") loaded = group("and", [loaded]);
    return loaded;
  }

  function snapshot() { return JSON.stringify(root); }
  function restore(text) { root = JSON.parse(text); }

  function isEmptyValue(v) { return v === null || v === undefined || (typeof v === "string" && v.trim() === ""); }

  /** Why a condition cannot be evaluated yet, or "" when it is complete. */
  function incompleteReason(node) {
    if (!node.field) return node.wants === "bombora" ? "Choose a Bombora intent topic." : "Choose a field.";
    if (!node.operator) return "Choose how to compare.";
    if (B.NO_VALUE[node.operator]) return "";
    var v = node.value;
    if (B.LIST_VALUE[node.operator]) return Array.isArray(v) && v.length ? "" : "Pick at least one value.";
    if (node.operator === "between") {
      return Array.isArray(v) && v.length === 2 && !isEmptyValue(v[0]) && !isEmptyValue(v[1]) ? "" : "Enter both ends of the range.";
    }
    return isEmptyValue(v) ? "Enter a value." : "";
  }

  /** The API tree, leaving out what cannot be evaluated yet; fills `map` (path -> id) and `gaps` (id -> reason). */
  function toApi(node, path, map, gaps) {
    if (node.kind === "condition") {
      var reason = incompleteReason(node);
      if (reason) { gaps[node.id] = reason; return null; }
      map[path] = node.id;
      var out = { field: node.field, operator: node.operator };
      if (!B.NO_VALUE[node.operator]) out.value = node.value;
      return out;
    }
    var children = [];
    node.children.forEach(function (child) {
      var childPath = (path ? path + "." : "") + "children[" + children.length + "]";
      var made = toApi(child, childPath, map, gaps);
      if (made) children.push(made);
    });
    if (!children.length) {
      if (node !== root || node.children.length) gaps[node.id] = node.children.length ? "Complete a condition in this group." : "This group is empty: add a condition or remove it.";
      return null;
    }
    if (node.op === "not" && children.length !== 1) { gaps[node.id] = "NOT applies to exactly one item."; return null; }
    map[path] = node.id;
    return { op: node.op, children: children };
  }

  function apiTree() {
    var map = {};
    var gaps = {};
    var tree = toApi(root, "", map, gaps);
    return { tree: tree, map: map, gaps: gaps };
  }

  // ---- changes, undo and redo ------------------------------------------------------------------------
  function syncHistory() {
    var s = store();
    s.canUndo = undoStack.length > 0;
    s.canRedo = redoStack.length > 0;
  }

  /** Apply a change to the tree: record undo, re-render, preview. `mutate` returns false to cancel. */
  function change(mutate, focus) {
    endEdit(); // a value being typed is its own undo step, before this change
    var before = snapshot();
    if (mutate() === false) return;
    if (snapshot() === before) return;
    undoStack.push(before);
    if (undoStack.length > 200) undoStack.shift();
    redoStack = [];
    focusAfterRender = focus || null;
    afterChange();
  }

  function afterChange() {
    syncHistory();
    render();
    schedulePreview();
  }

  function undo() {
    if (!undoStack.length) return;
    redoStack.push(snapshot());
    restore(undoStack.pop());
    focusAfterRender = { selector: "[data-action=undo]", global: true };
    announce("Undone.");
    afterChange();
  }

  function redo() {
    if (!redoStack.length) return;
    undoStack.push(snapshot());
    restore(redoStack.pop());
    focusAfterRender = { selector: "[data-action=redo]", global: true };
    announce("Redone.");
    afterChange();
  }

  // Typing in a value box: the tree changes on every key (for the live count) but undo sees one step.
  function beginEdit() { if (editSnapshot === null) editSnapshot = snapshot(); }
  function endEdit() {
    if (editSnapshot !== null && editSnapshot !== snapshot()) {
      undoStack.push(editSnapshot);
      redoStack = [];
      syncHistory();
    }
    editSnapshot = null;
  }

  // ---- structural operations ------------------------------------------------------------------------
  function canAdd(groupNode) { return !(groupNode.op === "not" && groupNode.children.length >= 1); }

  function addCondition(groupId) {
    var made = condition();
    change(function () {
      var g = find(groupId).node;
      if (!canAdd(g)) return false;
      g.children.push(made);
    }, { id: made.id, role: "field", open: true });
    announce("Condition added. Choose a field.");
  }

  function addGroup(groupId, op) {
    var inner = condition();
    var made = group(op || "or", [inner]);
    change(function () {
      var g = find(groupId).node;
      if (!canAdd(g)) return false;
      g.children.push(made);
    }, { id: inner.id, role: "field", open: true });
    announce("Group added with one empty condition.");
  }

  function setOp(groupId, op) {
    change(function () {
      var g = find(groupId).node;
      if (g.op === op) return false;
      // NOT negates exactly one item: several children are first wrapped in an AND group.
      if (op === "not" && g.children.length > 1) {
        var wrapped = group(g.op === "or" ? "or" : "and", g.children);
        g.children = [wrapped];
        announce("NOT applies to one item, so the group's items were wrapped in a group inside it.");
      }
      g.op = op;
    }, { id: groupId, role: "op-" + op });
  }

  function removeNode(id) {
    var hit = find(id);
    if (!hit || !hit.parent) return;
    var index = hit.parent.children.indexOf(hit.node);
    var parentId = hit.parent.id;
    change(function () {
      var h = find(id);
      h.parent.children.splice(h.parent.children.indexOf(h.node), 1);
    }, function () {
      var p = find(parentId);
      if (!p) return null;
      var siblings = p.node.children;
      if (siblings.length) return { id: siblings[Math.min(index, siblings.length - 1)].id, role: "remove" };
      return { id: parentId, role: "add-condition" };
    });
    announce("Removed.");
  }

  /** Move node `id` into group `targetId` at `index` (index in the target after removal). */
  function moveNode(id, targetId, index, focusRole) {
    change(function () {
      var hit = find(id);
      var target = find(targetId);
      if (!hit || !hit.parent || !target || target.node.kind !== "group") return false;
      if (find(targetId, hit.node)) return false; // never into itself or its own descendants
      var others = target.node.children.filter(function (c) { return c.id !== id; });
      if (target.node.op === "not" && others.length >= 1) return false; // NOT holds exactly one item
      hit.parent.children.splice(hit.parent.children.indexOf(hit.node), 1);
      index = Math.max(0, Math.min(index, target.node.children.length));
      target.node.children.splice(index, 0, hit.node);
    }, { id: id, role: focusRole || "handle" });
  }

  function moveUp(id) {
    var hit = find(id); var i = hit.parent.children.indexOf(hit.node);
    if (i > 0) { moveNode(id, hit.parent.id, i - 1, "up"); announce("Moved up."); }
  }
  function moveDown(id) {
    var hit = find(id); var i = hit.parent.children.indexOf(hit.node);
    if (i < hit.parent.children.length - 1) { moveNode(id, hit.parent.id, i + 1, "down"); announce("Moved down."); }
  }
  function moveOut(id) {
    var hit = find(id); var grand = find(hit.parent.id);
    if (!grand || !grand.parent) return;
    var at = grand.parent.children.indexOf(grand.node) + 1;
    if (grand.parent.op === "not") return;
    moveNode(id, grand.parent.id, at, "out");
    announce("Moved out of the group.");
  }
  function intoTarget(id) {
    var hit = find(id); var i = hit.parent.children.indexOf(hit.node);
    var prev = i > 0 ? hit.parent.children[i - 1] : null;
    return prev && prev.kind === "group" && canAdd(prev) ? prev : null;
  }
  function moveIn(id) {
    var target = intoTarget(id);
    if (!target) return;
    moveNode(id, target.id, target.children.length, "in");
    announce("Moved into the group above.");
  }

  // ---- condition edits ------------------------------------------------------------------------------
  function defaultOperator(spec) {
    var ops = spec.operators || [];
    var prefer = { category: "in", audience: "in", membership: "in", bombora: "gte", number: "gte", boolean: "eq", date: "gte", text: "contains", identifier: "eq" };
    var want = prefer[spec.type];
    return ops.indexOf(want) >= 0 ? want : (ops[0] || "eq");
  }

  function defaultValue(spec, operator) {
    if (B.NO_VALUE[operator]) return null;
    if (B.LIST_VALUE[operator]) return [];
    if (operator === "between") return [null, null];
    if (spec.type === "bombora") return SURGE;
    if (spec.type === "boolean") return true;
    return null;
  }

  function setField(id, name) {
    var spec = B.fieldSpec(catalogue, name);
    if (!spec) return;
    change(function () {
      var node = find(id).node;
      if (node.field === name) return false;
      node.field = name;
      var keepRule = node.wants === spec.type && (spec.operators || []).indexOf(node.operator) >= 0;
      if (!keepRule) {
        node.operator = defaultOperator(spec);
        node.value = defaultValue(spec, node.operator);
      }
      delete node.wants;
      delete node.placeholder;
    }, { id: id, role: "operator" });
  }

  function setOperator(id, operator) {
    change(function () {
      var node = find(id).node;
      var spec = B.fieldSpec(catalogue, node.field) || {};
      var before = node.operator;
      node.operator = operator;
      var wasList = !!B.LIST_VALUE[before];
      var isList = !!B.LIST_VALUE[operator];
      if (B.NO_VALUE[operator]) node.value = null;
      else if (isList && !wasList) node.value = isEmptyValue(node.value) ? [] : [node.value];
      else if (!isList && wasList) node.value = Array.isArray(node.value) && node.value.length ? node.value[0] : defaultValue(spec, operator);
      else if (operator === "between" && !Array.isArray(node.value)) node.value = [isEmptyValue(node.value) ? null : node.value, null];
      else if (before === "between" && operator !== "between") node.value = Array.isArray(node.value) ? node.value[0] : null;
      else if (B.NO_VALUE[before]) node.value = defaultValue(spec, operator);
    }, { id: id, role: "operator" });
  }

  function coerce(spec, raw) {
    if (raw === null || raw === undefined) return null;
    if (spec && (spec.type === "number" || spec.type === "bombora")) {
      if (typeof raw === "number") return raw;
      var text = String(raw).replace(/[, _]/g, "").trim();
      if (!text) return null;
      var n = Number(text);
      return isNaN(n) ? String(raw) : n; // a non-number goes to the API, which names the node
    }
    if (spec && (spec.type === "audience" || spec.type === "membership")) return Number(raw);
    if (spec && spec.type === "boolean") return raw === true || raw === "true";
    return raw;
  }

  /** Set a condition's value while typing (no re-render, so focus and caret stay). */
  function typeValue(id, value) {
    beginEdit();
    var node = find(id).node;
    node.value = value;
    refreshProblemMarks();
    schedulePreview();
  }

  // ---- preview --------------------------------------------------------------------------------------
  function schedulePreview() {
    var s = store();
    var built = apiTree();
    problems = built.gaps;
    s.empty = root.children.length === 0;
    s.incomplete = Object.keys(built.gaps).length;
    refreshProblemMarks();
    clearTimeout(previewTimer);
    if (!built.tree) {
      if (previewAbort) previewAbort.abort();
      previewSeq += 1;
      s.loading = false;
      s.count = null;
      s.sample = [];
      s.error = "";
      counts = {};
      pathToId = {};
      paintCounts();
      return;
    }
    s.loading = true;
    markStale(true);
    previewTimer = setTimeout(function () { runPreview(built); }, DEBOUNCE_MS);
  }

  function runPreview(built) {
    var s = store();
    var seq = ++previewSeq;
    if (previewAbort) previewAbort.abort();
    previewAbort = window.AbortController ? new AbortController() : null;
    B.api(config.apiUrl + "audiences/preview", {
      method: "POST", body: { tree: built.tree, sample: 10 }, signal: previewAbort ? previewAbort.signal : undefined
    }).then(function (result) {
      if (seq !== previewSeq) return; // a newer preview is on its way
      s.loading = false;
      markStale(false);
      if (!result.ok) { showApiError(result, built.map); return; }
      var data = result.data || {};
      followGeneration(data.generation);
      s.error = "";
      s.count = data.count;
      s.universe = data.universe;
      s.uid2Ready = data.uid2_ready;
      s.uid2Share = data.uid2_ready_share;
      s.elapsedMs = data.elapsed_ms;
      s.sample = data.sample || [];
      s.sampleColumns = sampleColumns(s.sample);
      pathToId = built.map;
      counts = {};
      Object.keys(data.nodes || {}).forEach(function (path) {
        var id = built.map[path];
        if (id) counts[id] = data.nodes[path];
      });
      paintCounts();
      clearApiErrors();
      // Issue 18: the insights panel listens for the tree it should break down.
      document.dispatchEvent(new CustomEvent("p360:preview", { detail: { tree: built.tree, count: data.count } }));
      announce(B.formatNumber(data.count) + " records match" + (data.universe ? " out of " + B.formatNumber(data.universe) : "") + ".", true);
    }, function (err) {
      if (err && err.name === "AbortError") return;
      if (seq !== previewSeq) return;
      s.loading = false;
      markStale(false);
      s.error = "The count could not be fetched (network). It will retry on your next change.";
    });
  }

  function sampleColumns(rows) {
    var present = {};
    rows.forEach(function (row) { Object.keys(row).forEach(function (k) { if (!isEmptyValue(row[k])) present[k] = true; }); });
    var cols = SAMPLE_COLUMNS.filter(function (c) { return present[c]; });
    return cols.slice(0, 8);
  }

  /** A 400 names the offending node's path: put its message on that node. */
  function showApiError(result, map) {
    var s = store();
    var error = (result.data && result.data.error) || {};
    var details = error.details || {};
    var list = (details.errors && details.errors.length) ? details.errors : [{ path: details.path || "", message: error.message }];
    clearApiErrors();
    var placed = 0;
    list.forEach(function (item) {
      var id = nodeForPath(item.path || "", map);
      if (id) { apiErrors[id] = item.message || error.message; placed += 1; }
    });
    paintApiErrors();
    s.error = placed ? "Some conditions need attention: see the messages on them." : B.errorMessage(result, "The count could not be computed.");
    s.count = null;
    announce(s.error, true);
  }

  var apiErrors = {};
  function nodeForPath(path, map) {
    var parts = String(path).split(".");
    var keep = [];
    for (var i = 0; i < parts.length; i++) {
      if (/^children\[\d+\]$/.test(parts[i])) keep.push(parts[i]); else break;
    }
    while (keep.length >= 0) {
      var id = map[keep.join(".")];
      if (id) return id;
      if (!keep.length) return null;
      keep.pop();
    }
    return null;
  }
  function clearApiErrors() { apiErrors = {}; paintApiErrors(); }
  function paintApiErrors() {
    treeEl.querySelectorAll("[data-role=api-error]").forEach(function (el) {
      var id = el.getAttribute("data-for");
      el.textContent = apiErrors[id] || "";
      el.hidden = !apiErrors[id];
      var nodeEl = el.closest(".bnode");
      if (nodeEl) nodeEl.classList.toggle("has-error", !!apiErrors[id]);
    });
  }

  function refreshProblemMarks() {
    var gaps = apiTree().gaps;
    problems = gaps;
    store().incomplete = Object.keys(gaps).length;
    treeEl.querySelectorAll("[data-role=gap]").forEach(function (el) {
      var id = el.getAttribute("data-for");
      el.textContent = gaps[id] || "";
      el.hidden = !gaps[id];
      var nodeEl = el.closest(".bnode");
      if (nodeEl) nodeEl.classList.toggle("is-incomplete", !!gaps[id]);
    });
  }

  function markStale(on) { treeEl.classList.toggle("counts-stale", !!on); }

  function paintCounts() {
    var universe = store().universe || 0;
    treeEl.querySelectorAll("[data-role=node-count]").forEach(function (el) {
      var id = el.getAttribute("data-for");
      var c = counts[id];
      var own = el.querySelector("[data-role=own]");
      var running = el.querySelector("[data-role=running]");
      var bar = el.querySelector("[data-role=bar-running]");
      var barOwn = el.querySelector("[data-role=bar-own]");
      if (!c) {
        own.textContent = "—"; running.textContent = "—";
        bar.style.width = "0%"; barOwn.style.width = "0%";
        el.setAttribute("aria-label", "No count yet");
        return;
      }
      own.textContent = B.formatNumber(c.count);
      running.textContent = B.formatNumber(c.running);
      var pctRun = universe ? Math.min(100, (100 * c.running) / universe) : 0;
      var pctOwn = universe ? Math.min(100, (100 * c.count) / universe) : 0;
      bar.style.width = pctRun.toFixed(2) + "%";
      barOwn.style.width = pctOwn.toFixed(2) + "%";
      el.setAttribute("aria-label", B.formatNumber(c.count) + " match on their own; " + B.formatNumber(c.running) + " so far in the group");
    });
  }

  var lastAnnounce = "";
  function announce(text, polite) {
    if (!announcer) return;
    // Re-announce identical text too (clear first so screen readers notice).
    announcer.textContent = "";
    lastAnnounce = text;
    setTimeout(function () { announcer.textContent = lastAnnounce; }, polite ? 50 : 10);
  }

  // ---- rendering ------------------------------------------------------------------------------------
  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var v = attrs[key];
      if (v === null || v === undefined || v === false) return;
      if (key === "text") el.textContent = v;
      else if (key === "className") el.className = v;
      else if (key.indexOf("on") === 0) el.addEventListener(key.slice(2), v);
      else el.setAttribute(key, v === true ? "" : v);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  function iconButton(label, symbol, role, onclick, disabled) {
    return h("button", {
      type: "button", className: "icon-btn", "aria-label": label, title: label, "data-focus": role,
      disabled: disabled ? true : null, onclick: onclick
    }, [h("span", { "aria-hidden": "true", text: symbol })]);
  }

  function nodeName(node, index) {
    if (node.kind === "group") return "group " + (index + 1);
    var spec = B.fieldSpec(catalogue, node.field);
    return "condition " + (index + 1) + (spec ? " (" + spec.label + ")" : "");
  }

  function countBox(node) {
    if (node === root) {
      // The whole audience: its own count is the result (the big number on the right says the same).
      return h("div", { className: "node-count", "data-role": "node-count", "data-for": node.id, role: "img", "aria-label": "No count yet" }, [
        h("div", { className: "node-count-nums" }, [
          h("span", { className: "muted", text: "matches " }), h("strong", { "data-role": "own", text: "—" }),
          h("span", { hidden: true, "data-role": "running" })
        ]),
        h("div", { className: "node-bar", "aria-hidden": "true" }, [
          h("span", { className: "node-bar-own", "data-role": "bar-own" }),
          h("span", { className: "node-bar-running", "data-role": "bar-running" })
        ])
      ]);
    }
    return h("div", { className: "node-count", "data-role": "node-count", "data-for": node.id, role: "img", "aria-label": "No count yet" }, [
      h("div", { className: "node-count-nums" }, [
        h("span", { className: "muted", text: "alone " }), h("strong", { "data-role": "own", text: "—" }),
        h("span", { className: "muted", text: " · so far " }), h("strong", { "data-role": "running", text: "—" })
      ]),
      h("div", { className: "node-bar", "aria-hidden": "true" }, [
        h("span", { className: "node-bar-own", "data-role": "bar-own" }),
        h("span", { className: "node-bar-running", "data-role": "bar-running" })
      ])
    ]);
  }

  function tools(node, parent, index) {
    var last = index === parent.children.length - 1;
    var name = nodeName(node, index);
    var grand = find(parent.id);
    var canOut = grand && grand.parent && grand.parent.op !== "not";
    return h("div", { className: "node-tools", role: "toolbar", "aria-label": "Actions for " + name }, [
      iconButton("Move " + name + " up", "↑", "up", function () { moveUp(node.id); }, index === 0),
      iconButton("Move " + name + " down", "↓", "down", function () { moveDown(node.id); }, last),
      iconButton("Move " + name + " into the group above", "⇥", "in", function () { moveIn(node.id); }, !intoTarget(node.id)),
      iconButton("Move " + name + " out of this group", "⇤", "out", function () { moveOut(node.id); }, !canOut),
      iconButton("Remove " + name, "✕", "remove", function () { removeNode(node.id); }, false)
    ]);
  }

  function messages(node) {
    return [
      h("p", { className: "node-gap", "data-role": "gap", "data-for": node.id, hidden: true }),
      h("p", { className: "node-error", "data-role": "api-error", "data-for": node.id, role: "alert", hidden: true })
    ];
  }

  function renderGroup(node, parent, index, depth) {
    var isRoot = !parent;
    var opButtons = ["and", "or", "not"].map(function (op) {
      var label = { and: "All (AND)", or: "Any (OR)", not: "Not (NOT)" }[op];
      var help = { and: "Match records meeting every item", or: "Match records meeting at least one item", not: "Exclude records matching its one item" }[op];
      return h("button", {
        type: "button", className: "op-btn op-btn-" + op, "aria-pressed": node.op === op ? "true" : "false",
        "data-focus": "op-" + op, title: help, onclick: function () { setOp(node.id, op); }
      }, [label]);
    });
    var full = !canAdd(node);
    var childrenEl = h("div", {
      className: "bnode-children", "data-group-id": node.id, "data-op": node.op,
      "data-empty-text": node.op === "not" ? "Drop the one item to exclude here" : "Drop conditions or groups here"
    });
    node.children.forEach(function (child, i) { childrenEl.appendChild(renderNode(child, node, i, depth + 1)); });
    var label = isRoot ? "Audience: " : "";
    var headChildren = [
      isRoot ? null : h("span", { className: "drag-handle", title: "Drag to move", "aria-hidden": "true", text: "⠿" }),
      h("span", { className: "group-label", text: label + (isRoot ? "match" : "Group · match") }),
      h("div", { className: "op-toggle", role: "group", "aria-label": (isRoot ? "Audience" : "Group") + " logic" }, opButtons),
      countBox(node),
      isRoot ? null : tools(node, parent, index)
    ];
    var foot = h("div", { className: "bnode-foot" }, [
      h("button", {
        type: "button", className: "button secondary small", "data-focus": "add-condition", disabled: full ? true : null,
        "aria-label": "Add a condition to " + (isRoot ? "the audience" : "this group"), onclick: function () { addCondition(node.id); }
      }, ["+ Condition"]),
      h("button", {
        type: "button", className: "button secondary small", "data-focus": "add-group", disabled: full ? true : null,
        "aria-label": "Add a group to " + (isRoot ? "the audience" : "this group"), onclick: function () { addGroup(node.id, node.op === "or" ? "and" : "or"); }
      }, ["+ Group"]),
      full ? h("span", { className: "muted small", text: "NOT holds exactly one item." }) : null
    ]);
    return h("div", {
      className: "bnode bgroup op-" + node.op + (isRoot ? " is-root" : "") + " depth-" + Math.min(depth, 6),
      "data-id": node.id, "data-kind": "group", role: "group",
      "aria-label": (isRoot ? "Audience" : nodeName(node, index)) + ": " + B.OP_LABELS[node.op] + " " + node.children.length + " item" + (node.children.length === 1 ? "" : "s")
    }, [h("div", { className: "bnode-head" }, headChildren)].concat(messages(node)).concat([childrenEl, foot]));
  }

  function renderCondition(node, parent, index) {
    var spec = B.fieldSpec(catalogue, node.field);
    var name = nodeName(node, index);
    var fieldButton = h("button", {
      type: "button", className: "field-btn" + (spec ? "" : " is-empty"), "data-focus": "field",
      "aria-haspopup": "listbox", "aria-label": "Field of " + name + ": " + (spec ? spec.label : "none chosen") + ". Change field",
      onclick: function (e) { openPicker(node.id, e.currentTarget); }
    }, [spec ? spec.label : node.wants === "bombora" ? "Choose an intent topic…" : "Choose a field…"]);
    var parts = [
      h("span", { className: "drag-handle", title: "Drag to move", "aria-hidden": "true", text: "⠿" }),
      fieldButton
    ];
    if (spec) {
      var opSelect = h("select", {
        className: "op-select", "aria-label": "Comparison of " + name, "data-focus": "operator",
        onchange: function (e) { setOperator(node.id, e.target.value); }
      }, (spec.operators || []).map(function (op) {
        var opt = h("option", { value: op, text: B.OPERATOR_LABELS[op] || op });
        if (op === node.operator) opt.selected = true;
        return opt;
      }));
      if (spec.bomboraPrefix) parts.push(measureSelect(node, spec, name));
      parts.push(opSelect);
      parts.push(valueEditor(node, spec, name));
    }
    if ((node.placeholder || node.wants) && incompleteReason(node)) parts.push(h("span", { className: "pill pill-mapping", text: "fill in" }));
    return h("div", {
      className: "bnode bcond", "data-id": node.id, "data-kind": "condition", role: "group", "aria-label": name
    }, [
      h("div", { className: "bnode-head" }, [h("div", { className: "cond-main" }, parts), countBox(node), tools(node, parent, index)])
    ].concat(messages(node)));
  }

  function renderNode(node, parent, index, depth) {
    return node.kind === "group" ? renderGroup(node, parent, index, depth) : renderCondition(node, parent, index);
  }

  // ---- value editors (fit the field type) -----------------------------------------------------------
  function inputFor(node, spec, name, position, label) {
    var type = spec.type === "number" || spec.type === "bombora" ? "number" : spec.type === "date" ? "date" : "text";
    var current = position === null ? node.value : (Array.isArray(node.value) ? node.value[position] : null);
    var attrs = {
      type: type, className: "value-input" + (type === "number" ? " num" : ""), "aria-label": label,
      "data-focus": position === null ? "value" : "value-" + position,
      value: current === null || current === undefined ? "" : String(current),
      placeholder: spec.examples && spec.examples.length && type !== "date" ? "e.g. " + spec.examples[0] : null,
      onfocus: beginEdit, onchange: function () { endEdit(); }, onblur: endEdit,
      oninput: function (e) {
        var v = coerce(spec, e.target.value);
        if (position === null) { typeValue(node.id, v); }
        else {
          var pair = Array.isArray(node.value) ? node.value.slice() : [null, null];
          pair[position] = v;
          typeValue(node.id, pair);
        }
        syncSliders(node.id);
      }
    };
    if (type === "number" && spec.min !== undefined && spec.min !== null) attrs.min = spec.min;
    if (type === "number" && spec.max !== undefined && spec.max !== null) attrs.max = spec.max;
    if (spec.type === "bombora") { attrs.min = typeof spec.min === "number" ? spec.min : 0; attrs.max = 100; attrs.step = 1; }
    if (type === "number" && spec.type !== "bombora") attrs.step = "any";
    return h("input", attrs);
  }

  function chips(node, spec, name) {
    var options = (spec.values || []).map(function (v) {
      return typeof v === "object" && v !== null
        ? { value: v.id, label: v.name + (v.count !== undefined ? " (" + B.formatNumber(v.count) + ")" : "") }
        : { value: v, label: String(v) };
    }).filter(function (o) { return !(spec.type === "audience" && config.audienceId && String(o.value) === String(config.audienceId)); });
    var selected = Array.isArray(node.value) ? node.value.map(String) : [];
    // A chosen value that is not (or no longer) known, e.g. a deleted audience: shown so it can be removed.
    selected.forEach(function (v) {
      if (!options.some(function (o) { return String(o.value) === v; })) {
        options.push({ value: v, label: (spec.type === "audience" || spec.type === "membership" ? "#" + v : v) + " (not found)" });
      }
    });
    var box = h("div", { className: "chips", role: "group", "aria-label": "Values of " + name });
    var filter = null;
    if (options.length > 12) {
      filter = h("input", {
        type: "search", className: "chip-filter", placeholder: "Filter " + options.length + " values…", "aria-label": "Filter the values of " + name,
        oninput: function (e) {
          var q = e.target.value.toLowerCase();
          box.querySelectorAll(".chip").forEach(function (chip) {
            chip.hidden = q && chip.textContent.toLowerCase().indexOf(q) < 0 && chip.getAttribute("aria-pressed") !== "true";
          });
        }
      });
    }
    options.forEach(function (o) {
      var on = selected.indexOf(String(o.value)) >= 0;
      box.appendChild(h("button", {
        type: "button", className: "chip", "aria-pressed": on ? "true" : "false", "data-value": String(o.value),
        "data-focus": "chip-" + o.value,
        onclick: function () {
          change(function () {
            var n = find(node.id).node;
            var list = Array.isArray(n.value) ? n.value.slice() : [];
            var at = list.map(String).indexOf(String(o.value));
            if (at >= 0) list.splice(at, 1); else list.push(coerce(spec, o.value));
            n.value = list;
          }, { id: node.id, role: "chip-" + o.value });
        }
      }, [o.label]));
    });
    if (!options.length) box.appendChild(h("span", { className: "muted small", text: "No known values." }));
    return h("div", { className: "chips-wrap" }, [filter, box]);
  }

  function listText(node, spec, name) {
    var text = Array.isArray(node.value) ? node.value.join(", ") : "";
    return h("input", {
      type: "text", className: "value-input wide", "aria-label": "Values of " + name + ", separated by commas",
      "data-focus": "value", value: text, placeholder: "one, two, three",
      onfocus: beginEdit, onchange: function () { endEdit(); }, onblur: endEdit,
      oninput: function (e) {
        var list = e.target.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean).map(function (v) { return coerce(spec, v); });
        typeValue(node.id, list);
      }
    });
  }

  /** Issue 18: what a Bombora condition measures on its topic (this week's score, best of 4 weeks, rise over 12
      weeks, research volume, Bombora's surge flag): switching keeps the topic. */
  function measureSelect(node, spec, name) {
    return h("select", {
      className: "measure-select", "aria-label": "What " + name + " measures on " + spec.topic, "data-focus": "measure",
      onchange: function (e) { setField(node.id, e.target.value + spec.topic); }
    }, B.BOMBORA_MEASURES.map(function (m) {
      var opt = h("option", { value: m.prefix, text: m.label });
      if (m.prefix === spec.bomboraPrefix) opt.selected = true;
      return opt;
    }));
  }

  function bomboraEditor(node, spec, name) {
    var value = typeof node.value === "number" ? node.value : SURGE;
    var low = typeof spec.min === "number" ? spec.min : 0;
    var slider = h("input", {
      type: "range", min: low, max: 100, step: 1, value: String(value), className: "score-slider", "data-slider-for": node.id,
      "aria-label": "Intent score of " + name + " (" + low + " to 100)", "data-focus": "slider",
      onfocus: beginEdit, onchange: function () { endEdit(); }, onblur: endEdit,
      oninput: function (e) {
        typeValue(node.id, Number(e.target.value));
        var box = treeEl.querySelector("[data-id='" + node.id + "'] [data-focus=value]");
        if (box) box.value = e.target.value;
      }
    });
    var surging = h("button", {
      type: "button", className: "button secondary small", "data-focus": "surging",
      "aria-label": "Set " + name + " to surging (score at least " + SURGE + ")",
      onclick: function () {
        change(function () { var n = find(node.id).node; n.operator = "gte"; n.value = SURGE; }, { id: node.id, role: "surging" });
      }
    }, ["Surging (≥ " + SURGE + ")"]);
    return h("span", { className: "score-editor" }, [slider, inputFor(node, spec, name, null, "Intent score of " + name), surging]);
  }

  function syncSliders(id) {
    var node = find(id) && find(id).node;
    var slider = treeEl.querySelector("[data-slider-for='" + id + "']");
    if (slider && node && typeof node.value === "number") slider.value = String(node.value);
  }

  function valueEditor(node, spec, name) {
    var op = node.operator;
    if (B.NO_VALUE[op]) return h("span", { className: "muted small", text: "" });
    var hasValues = spec.values && spec.values.length;
    if (B.LIST_VALUE[op]) return hasValues ? chips(node, spec, name) : listText(node, spec, name);
    if (op === "between") {
      return h("span", { className: "range-editor" }, [
        inputFor(node, spec, name, 0, "Lowest value of " + name),
        h("span", { className: "muted", text: "and" }),
        inputFor(node, spec, name, 1, "Highest value of " + name)
      ]);
    }
    if (spec.type === "bombora") return bomboraEditor(node, spec, name);
    if (spec.type === "boolean") {
      return h("select", {
        className: "value-input", "aria-label": "Value of " + name, "data-focus": "value",
        onchange: function (e) { change(function () { find(node.id).node.value = e.target.value === "true"; }, { id: node.id, role: "value" }); }
      }, [true, false].map(function (b) {
        var opt = h("option", { value: String(b), text: b ? "yes" : "no" });
        if (node.value === b) opt.selected = true;
        return opt;
      }));
    }
    if (hasValues && spec.type === "category" && (op === "eq" || op === "neq")) {
      var known = spec.values.map(String);
      var choices = isEmptyValue(node.value) || known.indexOf(String(node.value)) >= 0 ? spec.values : spec.values.concat([node.value]);
      var select = h("select", {
        className: "value-input", "aria-label": "Value of " + name, "data-focus": "value",
        onchange: function (e) { change(function () { find(node.id).node.value = e.target.value || null; }, { id: node.id, role: "value" }); }
      }, [h("option", { value: "", text: "Choose…" })].concat(choices.map(function (v) {
        var opt = h("option", { value: String(v), text: String(v) });
        if (String(node.value) === String(v)) opt.selected = true;
        return opt;
      })));
      return select;
    }
    return inputFor(node, spec, name, null, "Value of " + name);
  }

  // ---- render + drag and drop -----------------------------------------------------------------------
  function render() {
    sortables.forEach(function (s) { s.destroy(); });
    sortables = [];
    var active = document.activeElement;
    var activeKey = null;
    if (active && treeEl.contains(active)) {
      var owner = active.closest("[data-id]");
      if (owner && active.getAttribute("data-focus")) activeKey = { id: owner.getAttribute("data-id"), role: active.getAttribute("data-focus") };
    }
    treeEl.textContent = "";
    treeEl.appendChild(renderGroup(root, null, 0, 0));
    treeEl.querySelectorAll(".bnode-children").forEach(function (el) {
      sortables.push(new window.Sortable(el, {
        group: { name: "p360-tree", pull: true, put: function (to, from, dragEl) { return canDrop(to.el, dragEl); } },
        handle: ".drag-handle", draggable: ".bnode", animation: 120, forceFallback: true, fallbackOnBody: true,
        fallbackTolerance: 3, swapThreshold: 0.6, emptyInsertThreshold: 16,
        ghostClass: "is-ghost", chosenClass: "is-chosen", dragClass: "is-dragging",
        onEnd: function (evt) {
          var id = evt.item.getAttribute("data-id");
          var target = evt.to.getAttribute("data-group-id");
          var index = evt.newDraggableIndex !== undefined ? evt.newDraggableIndex : evt.newIndex;
          var from = evt.from.getAttribute("data-group-id");
          var oldIndex = evt.oldDraggableIndex !== undefined ? evt.oldDraggableIndex : evt.oldIndex;
          // Let Sortable finish its own clean-up, then rebuild the DOM from the state.
          setTimeout(function () {
            if (from === target && oldIndex === index) { render(); return; }
            moveNode(id, target, index, "handle");
            announce("Moved.");
          }, 0);
        }
      }));
    });
    paintCounts();
    refreshProblemMarks();
    paintApiErrors();
    restoreFocus(focusAfterRender || activeKey);
    focusAfterRender = null;
    var s = store();
    s.empty = root.children.length === 0;
    treeEl.setAttribute("data-tree", JSON.stringify(apiTree().tree));
  }

  function canDrop(containerEl, dragEl) {
    var target = find(containerEl.getAttribute("data-group-id"));
    if (!target) return false;
    if (target.node.op !== "not") return true;
    var draggedId = dragEl.getAttribute("data-id");
    var others = target.node.children.filter(function (c) { return c.id !== draggedId; });
    return others.length === 0;
  }

  function restoreFocus(key) {
    if (!key) return;
    if (typeof key === "function") key = key();
    if (!key) return;
    var el = null;
    if (key.global) el = document.querySelector(key.selector);
    else {
      var nodeEl = treeEl.querySelector("[data-id='" + key.id + "']");
      if (nodeEl) {
        el = nodeEl.querySelector("[data-focus='" + key.role + "']:not([disabled])");
        if (!el) el = nodeEl.querySelector("[data-focus]:not([disabled])");
      }
    }
    if (el) el.focus({ preventScroll: false });
    // A new condition opens its field picker straight away (Esc closes it and leaves focus on the field button).
    if (el && key.open && el.getAttribute("data-focus") === "field") openPicker(key.id, el);
  }

  // ---- field picker (a searchable, grouped listbox; Bombora topics searched on the server) -----------
  var picker = {
    el: document.getElementById("field-picker"), input: null, list: null, nodeId: null, opener: null,
    options: [], active: -1, topicSeq: 0, topics: [], topicTimer: null
  };
  picker.input = picker.el.querySelector("input");
  picker.list = picker.el.querySelector("[role=listbox]");

  function openPicker(nodeId, opener) {
    picker.nodeId = nodeId;
    picker.opener = opener;
    picker.input.value = "";
    picker.el.hidden = false;
    var rect = opener.getBoundingClientRect();
    picker.el.style.top = (window.scrollY + rect.bottom + 4) + "px";
    picker.el.style.left = Math.max(8, Math.min(window.scrollX + rect.left, window.scrollX + document.documentElement.clientWidth - picker.el.offsetWidth - 8)) + "px";
    opener.setAttribute("aria-expanded", "true");
    searchTopics("");
    fillPicker();
    picker.input.focus();
  }

  function closePicker(returnFocus) {
    if (picker.el.hidden) return;
    picker.el.hidden = true;
    if (picker.opener) picker.opener.setAttribute("aria-expanded", "false");
    if (returnFocus && picker.opener && document.body.contains(picker.opener)) picker.opener.focus();
  }

  function searchTopics(q) {
    clearTimeout(picker.topicTimer);
    picker.topicTimer = setTimeout(function () {
      var seq = ++picker.topicSeq;
      B.api(config.apiUrl + "fields/bombora?limit=20&q=" + encodeURIComponent(q)).then(function (result) {
        if (seq !== picker.topicSeq) return;
        picker.topics = result.ok && result.data ? (result.data.topics || []) : [];
        picker.topicsError = result.ok ? "" : "Topic search failed.";
        if (!picker.el.hidden) fillPicker();
      }, function () { picker.topics = []; });
    }, q ? 200 : 0);
  }

  function fillPicker() {
    var q = picker.input.value.trim().toLowerCase();
    var groups = { Record: [], Custom: [], Audience: [], Bombora: [] };
    catalogue.fields.forEach(function (f) {
      var hay = (f.label + " " + f.name).toLowerCase();
      if (q && hay.indexOf(q) < 0) return;
      (groups[f.group] || (groups[f.group] = [])).push({ name: f.name, label: f.label, hint: f.type });
    });
    picker.topics.forEach(function (t) {
      groups.Bombora.push({ name: t.field || ("bombora:" + t.name), label: t.name, hint: (t.category || "intent") + (t.surging_domains !== null && t.surging_domains !== undefined ? " · " + B.formatNumber(t.surging_domains) + " surging" : "") });
    });
    picker.list.textContent = "";
    picker.options = [];
    var order = ["Record", "Custom", "Audience", "Bombora"];
    Object.keys(groups).forEach(function (g) { if (order.indexOf(g) < 0) order.push(g); });
    order.forEach(function (g) {
      var items = groups[g] || [];
      var heading = g === "Bombora" ? "Bombora intent" + (catalogue.week ? " (week of " + catalogue.week + ")" : "") : g === "Audience" ? "Audience membership" : g === "Custom" ? "Custom (from uploads)" : g === "Record" ? "Record" : g;
      if (!items.length && g !== "Bombora") return;
      var groupEl = h("li", { role: "presentation", className: "picker-group" }, [h("span", { className: "picker-heading", id: "picker-g-" + g.replace(/\W+/g, "-"), text: heading })]);
      var ul = h("ul", { role: "group", "aria-labelledby": "picker-g-" + g.replace(/\W+/g, "-") });
      items.forEach(function (item) {
        var index = picker.options.length;
        var li = h("li", {
          role: "option", id: "picker-opt-" + index, className: "picker-option", "aria-selected": "false", "data-field": item.name,
          onmousedown: function (e) { e.preventDefault(); choose(index); }
        }, [h("span", { text: item.label }), h("span", { className: "muted small", text: item.hint || "" })]);
        picker.options.push(item);
        ul.appendChild(li);
      });
      if (g === "Bombora" && !items.length) {
        ul.appendChild(h("li", { role: "presentation", className: "muted small picker-note", text: catalogue.week || catalogue.topics ? "No topic matches; type to search " + B.formatNumber(catalogue.topics) + " topics." : "No Bombora week loaded yet." }));
      }
      groupEl.appendChild(ul);
      picker.list.appendChild(groupEl);
    });
    setActive(picker.options.length ? 0 : -1);
  }

  function setActive(index) {
    picker.active = index;
    picker.list.querySelectorAll("[role=option]").forEach(function (li) {
      var on = li.id === "picker-opt-" + index;
      li.setAttribute("aria-selected", on ? "true" : "false");
      if (on) li.scrollIntoView({ block: "nearest" });
    });
    if (index >= 0) picker.input.setAttribute("aria-activedescendant", "picker-opt-" + index);
    else picker.input.removeAttribute("aria-activedescendant");
  }

  function choose(index) {
    var item = picker.options[index];
    if (!item) return;
    var nodeId = picker.nodeId;
    closePicker(false);
    if (!B.fieldSpec(catalogue, item.name)) return;
    setField(nodeId, item.name);
    var spec = B.fieldSpec(catalogue, item.name);
    announce("Field " + spec.label + " chosen.");
  }

  picker.input.addEventListener("input", function () {
    searchTopics(picker.input.value.trim());
    fillPicker();
  });
  picker.input.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown") { e.preventDefault(); setActive(Math.min(picker.options.length - 1, picker.active + 1)); }
    else if (e.key === "ArrowUp") { e.preventDefault(); setActive(Math.max(0, picker.active - 1)); }
    else if (e.key === "Enter") { e.preventDefault(); choose(picker.active); }
    else if (e.key === "Escape") { e.preventDefault(); closePicker(true); }
    else if (e.key === "Tab") { closePicker(false); }
  });
  document.addEventListener("mousedown", function (e) {
    if (!picker.el.hidden && !picker.el.contains(e.target) && e.target !== picker.opener) closePicker(false);
  });

  // ---- keyboard shortcuts ---------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    if (!(e.ctrlKey || e.metaKey)) return;
    var key = e.key.toLowerCase();
    var t = e.target;
    var typing = t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && /^(text|search|number|date)$/.test(t.type)));
    if (typing) return; // the browser's own undo inside a text box
    if (key === "z" && !e.shiftKey) { e.preventDefault(); undo(); }
    else if ((key === "z" && e.shiftKey) || key === "y") { e.preventDefault(); redo(); }
  });

  // ---- saving and templates (called from the Alpine panels) -----------------------------------------
  function requireCompleteTree() {
    var built = apiTree();
    var s = store();
    if (!built.tree) { s.saveError = "Add at least one complete condition first."; return null; }
    if (Object.keys(built.gaps).length) {
      s.saveError = "Complete or remove the highlighted conditions first (" + Object.keys(built.gaps).length + ").";
      var first = treeEl.querySelector(".is-incomplete [data-focus]");
      if (first) first.focus();
      return null;
    }
    return built;
  }

  function save() {
    var s = store();
    s.saveError = ""; s.saveMessage = "";
    var built = requireCompleteTree();
    if (!built) return;
    if (!s.name.trim()) { s.saveError = "Give the audience a name."; focusById("save-name"); return; }
    s.saving = true;
    var body = { name: s.name.trim(), description: s.description, tree: built.tree };
    var request = config.audienceId
      ? B.api(config.apiUrl + "audiences/" + config.audienceId, { method: "PATCH", body: Object.assign(body, { note: s.note }) })
      : B.api(config.apiUrl + "audiences", { method: "POST", body: body });
    request.then(function (result) {
      s.saving = false;
      if (!result.ok) {
        if (result.status === 400 && result.data && result.data.error && result.data.error.details && (result.data.error.details.path !== undefined || result.data.error.details.errors)) {
          showApiError(result, built.map);
        }
        s.saveError = B.errorMessage(result, "Saving failed.");
        return;
      }
      s.saveMessage = "Saved. Opening the audience…";
      window.location.assign(config.pagesUrl + result.data.id + "/");
    }, function () { s.saving = false; s.saveError = "Saving failed: the network is down. Your tree is still here."; });
  }

  function saveTemplate() {
    var s = store();
    s.saveError = ""; s.saveMessage = "";
    var built = requireCompleteTree();
    if (!built) return;
    if (!s.templateName.trim()) { s.saveError = "Give the template a name."; focusById("template-name"); return; }
    s.saving = true;
    B.api(config.apiUrl + "audience-templates", {
      method: "POST", body: { name: s.templateName.trim(), description: s.templateDescription, tree: built.tree }
    }).then(function (result) {
      s.saving = false;
      if (!result.ok) { s.saveError = B.errorMessage(result, "Saving the template failed."); return; }
      s.saveMessage = "Template “" + s.templateName.trim() + "” saved: your team can start from it.";
      s.templateName = ""; s.templateDescription = "";
      s.templates = [];
    }, function () { s.saving = false; s.saveError = "Saving the template failed (network)."; });
  }

  function focusById(id) { var el = document.getElementById(id); if (el) el.focus(); }

  function loadTemplates() {
    var s = store();
    if (s.templates.length || s.templatesLoading) return Promise.resolve(s.templates);
    s.templatesLoading = true; s.templatesError = "";
    return B.api(config.apiUrl + "audience-templates").then(function (result) {
      s.templatesLoading = false;
      if (!result.ok) { s.templatesError = B.errorMessage(result, "Templates could not be loaded."); return []; }
      var list = Array.isArray(result.data) ? result.data : (result.data && result.data.results) || [];
      s.templates = list.map(function (t) {
        return Object.assign({}, t, { summary: summaryText(t.tree) });
      });
      return s.templates;
    }, function () { s.templatesLoading = false; s.templatesError = "Templates could not be loaded (network)."; return []; });
  }

  function summaryText(tree) {
    var n = 0;
    (function walk(node) { if (!node) return; if (node.children) node.children.forEach(walk); else n += 1; })(tree);
    return n + " condition" + (n === 1 ? "" : "s");
  }

  function useTemplate(template) {
    change(function () { root = loadTree(template.tree); }, null);
    var s = store();
    if (!s.description && template.description) s.description = template.description;
    var first = treeEl.querySelector(".is-incomplete [data-focus]");
    announce("Template “" + template.name + "” loaded" + (first ? ": fill in the highlighted values." : "."));
    if (first) first.focus();
    else { var top = treeEl.querySelector("[data-focus]"); if (top) top.focus(); }
  }

  function clearAll() { change(function () { root = group("and", []); }, { id: null }); }

  // ---- the field catalogue follows the data ---------------------------------------------------------
  // Known values (countries, industries...) and custom fields come from the org's current data generation.
  // An import or a new Bombora week changes it: a preview answering another generation, a catalogue answered
  // while a rebuild runs (stale), or coming back to the tab, fetches the catalogue again.
  var fieldsTimer = null;
  var fieldsLoading = null;

  function loadFields() {
    var s = store();
    if (fieldsLoading) return fieldsLoading;
    clearTimeout(fieldsTimer);
    fieldsLoading = B.api(config.apiUrl + "fields").then(function (result) {
      fieldsLoading = null;
      if (!result.ok) { s.error = B.errorMessage(result, "The field catalogue could not be loaded."); return; }
      var changed = catalogue.generation !== undefined && catalogue.generation !== result.data.generation;
      catalogue = B.indexCatalogue(result.data);
      catalogue.generation = result.data.generation;
      s.week = catalogue.week;
      if (result.data.stale) fieldsTimer = setTimeout(loadFields, FIELDS_RETRY_MS);
      if (changed && s.ready) { render(); schedulePreview(); }
    }, function () { fieldsLoading = null; });
    return fieldsLoading;
  }

  function followGeneration(generation) {
    if (generation && catalogue.generation && generation !== catalogue.generation) loadFields();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && store() && store().ready) loadFields();
  });

  // ---- start-up -------------------------------------------------------------------------------------
  function start() {
    var s = store();
    var fieldsReady = loadFields();
    var treeReady = Promise.resolve(null);
    if (config.audienceId) {
      treeReady = B.api(config.apiUrl + "audiences/" + config.audienceId).then(function (result) {
        if (!result.ok) { s.error = B.errorMessage(result, "The audience could not be loaded."); return null; }
        s.name = result.data.name || "";
        s.description = result.data.description || "";
        return result.data.tree;
      });
    } else if (config.templateId) {
      treeReady = loadTemplates().then(function (list) {
        var t = list.filter(function (x) { return String(x.id) === String(config.templateId); })[0];
        if (!t) { s.error = "That template does not exist any more."; return null; }
        if (t.description) s.description = t.description;
        return t.tree;
      });
    }
    Promise.all([fieldsReady, treeReady]).then(function (answers) {
      root = loadTree(answers[1]);
      s.ready = true;
      render();
      schedulePreview();
    });
  }

  window.p360Builder = {
    tree: function () { return apiTree().tree; },
    state: function () { return JSON.parse(snapshot()); },
    counts: function () { return counts; },
    undo: undo, redo: redo, save: save, saveTemplate: saveTemplate, loadTemplates: loadTemplates,
    useTemplate: useTemplate, addCondition: function () { addCondition(root.id); }, addGroup: function () { addGroup(root.id, "or"); },
    clear: clearAll, refresh: schedulePreview, config: config
  };

  document.addEventListener("alpine:init", function () {
    window.Alpine.store("builder", Object.assign({}, initialStore));
  });
  document.addEventListener("alpine:initialized", start);
})();
