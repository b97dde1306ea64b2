// The lineage explorer: lays out the graph the page embeds (upstream to the left of the
// root, downstream to the right, one column per step) and draws it as SVG.
// Collapsed by default: only the root's neighbours show; "+" expands a node in place,
// "+N more" shows the rest of a long list, and clicking a node centres the explorer on it.
// The layout is a cheap layered one (columns by depth, rows in discovery order), so a
// graph of thousands of nodes renders in milliseconds and the page never freezes.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var PAGE = 25; // neighbours shown per node before a "+N more" entry
  var COLW = 250, ROWH = 34, NODEW = 200, NODEH = 24, PAD = 20;
  var data = JSON.parse(document.getElementById("lineage-data").textContent);
  var svg = document.getElementById("lineage");
  var detail = document.getElementById("lineage-detail");
  var stats = document.getElementById("lineage-stats");

  function index(side, sign) {
    var info = new Map();
    side.nodes.forEach(function (n) {
      info.set(n[0], { id: n[0], kind: n[1], label: n[2], depth: n[3], sign: sign });
    });
    var kids = new Map();
    side.edges.forEach(function (e) {
      var from = sign < 0 ? e[1] : e[0];
      var to = sign < 0 ? e[0] : e[1];
      var a = info.get(from), b = info.get(to);
      if (!a || !b || b.depth !== a.depth + 1) return; // tree edges only; others are drawn if both ends show
      if (!kids.has(from)) kids.set(from, []);
      kids.get(from).push(to);
    });
    return { info: info, kids: kids, edges: side.edges, sign: sign };
  }

  var sides = [index(data.up, -1), index(data.down, 1)];
  var expanded = new Set([data.root]); // keys "side|id"; the root's key is its id
  var showAll = new Set();

  function key(side, id) { return id === data.root ? id : side.sign + "|" + id; }

  function nodeUrl(id) {
    var kind = id.split(":", 1)[0];
    if (kind === "run") return "/ui/run/" + encodeURIComponent(id.slice(4));
    return "/ui/" + kind + "?id=" + encodeURIComponent(id);
  }
  function lineageUrl(id) {
    return "/ui/lineage?node=" + encodeURIComponent(id) + "&depth=" + data.depth;
  }

  // Which nodes show, and where: breadth-first from the root through expanded nodes.
  function layout() {
    var placed = new Map(); // key -> {x, y, node, side}
    var columns = new Map(); // column -> next row
    var more = []; // {parentKey, count, x, y}
    function place(k, node, side, col) {
      if (placed.has(k)) return false;
      var row = columns.get(col) || 0;
      columns.set(col, row + 1);
      placed.set(k, { key: k, node: node, side: side, col: col, row: row });
      return true;
    }
    var rootInfo = sides[0].info.get(data.root) || sides[1].info.get(data.root);
    place(data.root, rootInfo, null, 0);
    sides.forEach(function (side) {
      var queue = [data.root];
      while (queue.length) {
        var id = queue.shift();
        var k = key(side, id);
        if (!expanded.has(k)) continue;
        var kids = side.kids.get(id) || [];
        var limit = showAll.has(k) ? kids.length : Math.min(kids.length, PAGE);
        for (var i = 0; i < limit; i++) {
          var child = side.info.get(kids[i]);
          if (place(key(side, kids[i]), child, side, side.sign * child.depth)) queue.push(kids[i]);
        }
        if (limit < kids.length) {
          var col = side.sign * (side.info.get(id).depth + 1);
          var row = columns.get(col) || 0;
          columns.set(col, row + 1);
          more.push({ parent: k, count: kids.length - limit, col: col, row: row });
        }
      }
    });
    return { placed: placed, more: more, columns: columns };
  }

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var a in attrs) e.setAttribute(a, attrs[a]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

  function render() {
    var started = performance.now();
    var lay = layout();
    var minCol = 0, maxCol = 0, maxRow = 0;
    lay.columns.forEach(function (rows, col) {
      minCol = Math.min(minCol, col); maxCol = Math.max(maxCol, col); maxRow = Math.max(maxRow, rows);
    });
    function x(col) { return PAD + (col - minCol) * COLW; }
    function y(row) { return PAD + row * ROWH; }
    var frag = document.createDocumentFragment();
    var defs = el("defs", {}, frag);
    var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }, marker);
    var edgeLayer = el("g", { class: "edges" }, frag);
    var nodeLayer = el("g", { class: "nodes" }, frag);
    var drawn = new Set();
    sides.forEach(function (side) {
      side.edges.forEach(function (e) {
        var a = lay.placed.get(key(side, e[0])), b = lay.placed.get(key(side, e[1]));
        if (!a || !b || drawn.has(a.key + ">" + b.key)) return;
        drawn.add(a.key + ">" + b.key);
        var x1 = x(a.col) + NODEW, y1 = y(a.row) + NODEH / 2, x2 = x(b.col), y2 = y(b.row) + NODEH / 2;
        var mid = (x1 + x2) / 2;
        el("path", { d: "M" + x1 + " " + y1 + " C" + mid + " " + y1 + " " + mid + " " + y2 + " " + x2 + " " + y2,
          class: "edge", "marker-end": "url(#arrow)" }, edgeLayer);
      });
    });
    lay.placed.forEach(function (p) {
      var n = p.node;
      var g = el("g", { class: "node kind-" + n.kind + (p.key === data.root ? " root" : ""),
        transform: "translate(" + x(p.col) + "," + y(p.row) + ")", "data-id": n.id }, nodeLayer);
      var link = el("a", { href: lineageUrl(n.id), class: "node-link" }, g);
      el("rect", { width: NODEW, height: NODEH, rx: 5 }, link);
      var t = el("text", { x: 8, y: 16 }, link);
      t.textContent = clip(n.kind[0].toUpperCase() + " " + n.label, 30);
      el("title", {}, link).textContent = n.id;
      link.addEventListener("mouseenter", function () { show(n); });
      link.addEventListener("focus", function () { show(n); });
      var side = p.side;
      var kids = side ? side.kids.get(n.id) : null;
      if (side && kids && kids.length) {
        var open = expanded.has(p.key);
        var tg = el("g", { class: "toggle", role: "button", tabindex: "0", "data-key": p.key,
          transform: "translate(" + (side.sign < 0 ? -8 : NODEW + 8) + "," + NODEH / 2 + ")" }, g);
        el("circle", { r: 8 }, tg);
        el("text", { x: 0, y: 4, "text-anchor": "middle" }, tg).textContent = open ? "−" : "+";
        el("title", {}, tg).textContent = (open ? "collapse " : "expand ") + kids.length;
        tg.addEventListener("click", function () { toggle(p.key); });
        tg.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") toggle(p.key); });
      }
    });
    lay.more.forEach(function (m) {
      var g = el("g", { class: "node more", role: "button", tabindex: "0", "data-more": m.parent,
        transform: "translate(" + x(m.col) + "," + y(m.row) + ")" }, nodeLayer);
      el("rect", { width: NODEW, height: NODEH, rx: 5 }, g);
      el("text", { x: 8, y: 16 }, g).textContent = "+" + m.count + " more";
      g.addEventListener("click", function () { showAll.add(m.parent); render(); });
    });
    svg.replaceChildren(frag);
    svg.setAttribute("width", x(maxCol) + NODEW + PAD + 10);
    svg.setAttribute("height", y(maxRow) + PAD);
    var total = sides[0].info.size + sides[1].info.size - 1;
    stats.textContent = lay.placed.size + " of " + total + " nodes shown (" +
      (sides[0].info.size - 1) + " upstream, " + (sides[1].info.size - 1) + " downstream, depth " + data.depth + ")";
    window.dtLineage.shown = lay.placed.size;
    window.dtLineage.renderMs = performance.now() - started;
  }

  function toggle(k) {
    if (expanded.has(k) && k !== data.root) expanded.delete(k); else expanded.add(k);
    render();
  }

  function show(n) {
    detail.hidden = false;
    detail.replaceChildren();
    var h = document.createElement("h3");
    h.textContent = n.label;
    var p = document.createElement("p");
    p.className = "mono";
    p.textContent = n.id;
    var a = document.createElement("a");
    a.href = nodeUrl(n.id);
    a.textContent = "Open the " + n.kind + " page";
    detail.append(h, p, a);
  }

  document.getElementById("expand-all").addEventListener("click", function () {
    sides.forEach(function (side) {
      side.info.forEach(function (n) { expanded.add(key(side, n.id)); showAll.add(key(side, n.id)); });
    });
    render();
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    expanded = new Set([data.root]);
    showAll = new Set();
    render();
  });

  window.dtLineage = { ready: false, toggle: toggle };
  render();
  var root = svg.querySelector(".node.root");
  if (root && root.scrollIntoView) root.scrollIntoView({ block: "nearest", inline: "center" });
  window.dtLineage.ready = true;
  document.body.setAttribute("data-lineage-ready", "1");
})();
