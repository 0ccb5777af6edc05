/* The derived-segment picker (segment editor): AND / OR / NOT groups of the org's segments, nested.
 *
 * The picker edits a tree and writes it, as the API's expression JSON, into the editor's
 * `expression` textarea (kept as the "advanced" fallback); the form posts that textarea, so the page
 * saves exactly what the API accepts:
 *   group := {"op": "and" | "or", "children": [item, ...]} | {"op": "not", "children": [item]}
 *   item  := {"segment": ID} | group
 * Typing valid JSON in the textarea redraws the picker; the picker never rewrites what was typed
 * until the picker itself is used. Everything is a native button or select: Tab reaches it all,
 * Enter / Space act, and focus lands on what was just added (or where the removed item was).
 */
(function () {
  "use strict";

  var nextId = 1;
  function group(op, children) { return { id: nextId++, kind: "group", op: op, children: children || [] }; }
  function slot(segment) { return { id: nextId++, kind: "segment", segment: segment === undefined ? null : segment }; }

  function fromApi(node) {
    if (node && typeof node === "object" && !Array.isArray(node) && "segment" in node) {
      var ref = node.segment;
      return slot(typeof ref === "number" || (typeof ref === "string" && /^\d+$/.test(ref)) ? Number(ref) : null);
    }
    if (!node || typeof node !== "object" || Array.isArray(node)) throw new Error("not a group");
    var op = String(node.op || "").toLowerCase();
    if (op !== "and" && op !== "or" && op !== "not") throw new Error("bad op");
    if (!Array.isArray(node.children)) throw new Error("no children");
    return group(op, node.children.map(fromApi));
  }

  function toApi(node) {
    if (node.kind === "segment") return { segment: node.segment };
    return { op: node.op, children: node.children.map(toApi) };
  }

  function init(root) {
    var form = root.closest("form");
    var textarea = form.querySelector("textarea[name=expression]");
    var segments = JSON.parse(document.getElementById(root.dataset.segments).textContent);
    var byId = {};
    segments.forEach(function (s) { byId[s.id] = s; });
    var treeEl = root.querySelector("[data-role=tree]");
    var note = root.querySelector("[data-role=note]");
    var announcer = root.querySelector("[data-role=announce]");
    var pickerError = root.querySelector("[data-role=picker-error]");
    var tree = null;

    function announce(text) { announcer.textContent = ""; window.setTimeout(function () { announcer.textContent = text; }, 30); }

    function load(text) {
      if (!text.trim()) { tree = group("and", [slot()]); return true; }
      try { tree = fromApi(JSON.parse(text)); if (tree.kind !== "group") throw new Error("not a group"); return true; } catch (e) { return false; }
    }

    function find(id, node, parent) {
      node = node || tree;
      if (node.id === id) return { node: node, parent: parent || null };
      if (node.kind !== "group") return null;
      for (var i = 0; i < node.children.length; i++) {
        var hit = find(id, node.children[i], node);
        if (hit) return hit;
      }
      return null;
    }

    function sync() { textarea.value = JSON.stringify(toApi(tree)); note.hidden = true; }

    function change(fn, focus) {
      fn();
      pickerError.hidden = true;
      sync();
      render();
      if (focus) {
        var el = treeEl.querySelector(focus);
        if (el) el.focus();
      }
    }

    function el(tag, attrs, children) {
      var node = document.createElement(tag);
      Object.keys(attrs || {}).forEach(function (key) {
        if (key === "text") node.textContent = attrs[key];
        else if (key === "className") node.className = attrs[key];
        else node.setAttribute(key, attrs[key]);
      });
      (children || []).forEach(function (c) { if (c) node.appendChild(c); });
      return node;
    }

    function tool(label, text, focus, action) {
      var b = el("button", { type: "button", className: "icon-btn", "aria-label": label, title: label, "data-focus": focus, text: text });
      b.addEventListener("click", action);
      return b;
    }

    function describe(node) {
      if (node.kind === "segment") return node.segment === null ? "a segment to choose" : ((byId[node.segment] || {}).name || "segment #" + node.segment);
      return { and: "an ALL group", or: "an ANY group", not: "a NOT group" }[node.op];
    }

    function moveButtons(node, parent, index) {
      var tools = [];
      if (!parent) return tools;
      var up = tool("Move " + describe(node) + " up", "↑", "up", function () {
        change(function () { parent.children.splice(index, 1); parent.children.splice(index - 1, 0, node); }, "[data-node='" + node.id + "'] > .bnode-head [data-focus=up]");
        announce("Moved up.");
      });
      up.disabled = index === 0;
      var down = tool("Move " + describe(node) + " down", "↓", "down", function () {
        change(function () { parent.children.splice(index, 1); parent.children.splice(index + 1, 0, node); }, "[data-node='" + node.id + "'] > .bnode-head [data-focus=down]");
        announce("Moved down.");
      });
      down.disabled = index === parent.children.length - 1;
      var remove = tool("Remove " + describe(node), "✕", "remove", function () {
        change(function () { parent.children.splice(index, 1); }, "[data-node='" + parent.id + "'] > .bnode-foot button");
        announce("Removed " + describe(node) + ".");
      });
      return [up, down, remove];
    }

    function renderSegment(node, parent, index) {
      var selectId = "expr-seg-" + node.id;
      var select = el("select", { id: selectId, "data-focus": "segment", className: "op-select" });
      select.appendChild(el("option", { value: "", text: "Choose a segment…" }));
      segments.forEach(function (s) {
        var label = s.name + (s.derived ? " (derived)" : "") + (s.active ? "" : " (inactive)");
        var option = el("option", { value: String(s.id), text: label });
        if (s.id === node.segment) option.selected = true;
        select.appendChild(option);
      });
      var missing = node.segment !== null && !byId[node.segment];
      if (missing) {
        var gone = el("option", { value: String(node.segment), text: "#" + node.segment + " (not found)" });
        gone.selected = true;
        select.appendChild(gone);
        select.setAttribute("aria-invalid", "true");
      }
      if (node.segment === null) select.value = "";
      select.addEventListener("change", function () {
        change(function () { node.segment = select.value ? Number(select.value) : null; }, "#" + selectId);
      });
      var label = el("label", { for: selectId, className: "visually-hidden", text: "Segment " + (index + 1) + " of " + (parent ? "this group" : "the expression") });
      var head = el("div", { className: "bnode-head" }, [label, select].concat(moveButtons(node, parent, index)));
      var children = [head];
      if (missing) children.push(el("p", { className: "node-error", text: "There is no segment with id " + node.segment + " any more: choose another or remove it." }));
      return el("div", { className: "bnode bcond" + (missing ? " has-error" : "") + (node.segment === null ? " is-incomplete" : ""), "data-node": String(node.id) }, children);
    }

    function renderGroup(node, parent, index) {
      var names = { and: "All (AND)", or: "Any (OR)", not: "Not (NOT)" };
      var help = { and: "Users in every item", or: "Users in at least one item", not: "Users not in its one item" };
      var toggle = el("div", { className: "op-toggle", role: "group", "aria-label": "How this group combines its items" },
        ["and", "or", "not"].map(function (op) {
          var b = el("button", { type: "button", className: "op-btn op-btn-" + op, "aria-pressed": String(node.op === op), "data-focus": "op-" + op, title: help[op], text: names[op] });
          b.addEventListener("click", function () {
            if (node.op === op) return;
            change(function () {
              // NOT negates exactly one item: several are first wrapped in a group inside it (as the builder does).
              if (op === "not" && node.children.length > 1) node.children = [group(node.op, node.children)];
              node.op = op;
            }, "[data-node='" + node.id + "'] > .bnode-head [data-focus=op-" + op + "]");
            announce(op === "not" && node.children.length === 1 && node.children[0].kind === "group" ? "NOT applies to one item: the group's items were wrapped in a group inside it." : "The group now matches " + help[op].toLowerCase() + ".");
          });
          return b;
        }));
      var label = el("span", { className: "group-label", text: parent ? "Group" : "Users who are" });
      var head = el("div", { className: "bnode-head" }, [label, toggle].concat(moveButtons(node, parent, index)));
      var list = el("div", { className: "bnode-children", "data-op": node.op, "data-empty-text": node.op === "not" ? "Add the one segment or group to exclude" : "Add segments or groups" });
      node.children.forEach(function (child, i) { list.appendChild(render1(child, node, i)); });
      var full = node.op === "not" && node.children.length >= 1;
      var where = parent ? "this group" : "the expression";
      var addSeg = el("button", { type: "button", className: "button secondary small", "data-action": "add-segment", text: "+ Segment" , "aria-label": "Add a segment to " + where });
      var addGroup = el("button", { type: "button", className: "button secondary small", "data-action": "add-group", text: "+ Group", "aria-label": "Add a group to " + where });
      addSeg.disabled = addGroup.disabled = full;
      addSeg.addEventListener("click", function () {
        var made = slot();
        change(function () { node.children.push(made); }, "#expr-seg-" + made.id);
        announce("Segment added: choose it from the list.");
      });
      addGroup.addEventListener("click", function () {
        var inner = slot();
        change(function () { node.children.push(group("or", [inner])); }, "#expr-seg-" + inner.id);
        announce("Group added with one segment to choose.");
      });
      var foot = el("div", { className: "bnode-foot" }, [addSeg, addGroup].concat(full ? [el("span", { className: "muted small", text: "NOT holds one item: put several in a group." })] : []));
      return el("div", { className: "bnode bgroup op-" + node.op + (parent ? "" : " is-root"), "data-node": String(node.id), role: "group", "aria-label": parent ? names[node.op] + " group" : "Expression" }, [head, list, foot]);
    }

    function render1(node, parent, index) { return node.kind === "group" ? renderGroup(node, parent, index) : renderSegment(node, parent, index); }

    function render() {
      treeEl.textContent = "";
      treeEl.appendChild(render1(tree, null, 0));
    }

    function incomplete() { return Array.prototype.slice.call(treeEl.querySelectorAll("select[data-focus=segment]")).filter(function (s) { return !s.value; }); }

    if (!load(textarea.value)) {
      tree = group("and", [slot()]);
      note.hidden = false;
    }
    render();

    var details = textarea.closest("details");
    if (details) {
      var openField = details.querySelector("input[name=json_open]");
      details.addEventListener("toggle", function () { if (openField) openField.value = details.open ? "1" : ""; });
    }

    textarea.addEventListener("input", function () {
      pickerError.hidden = true;
      if (load(textarea.value)) { note.hidden = true; render(); }
      else note.hidden = false;
    });

    form.addEventListener("submit", function (event) {
      var derived = form.querySelector("[name=type]:checked");
      if (!derived || derived.value !== "derived" || !note.hidden) return; // the JSON (advanced) is what is saved
      var empty = incomplete();
      if (empty.length) {
        event.preventDefault();
        empty.forEach(function (s) { s.setAttribute("aria-invalid", "true"); s.setAttribute("aria-describedby", pickerError.id); });
        pickerError.textContent = empty.length === 1 ? "Not saved: choose a segment in the marked box, or remove it." : "Not saved: choose a segment in the " + empty.length + " marked boxes, or remove them.";
        pickerError.hidden = false;
        empty[0].focus();
      }
    });

    root.p360Expression = { tree: function () { return toApi(tree); } };
  }

  document.querySelectorAll("[data-expression-picker]").forEach(init);
})();
