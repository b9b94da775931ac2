// The page's behaviour: sortable tables, filter boxes, open/close buttons, the chart's
// read-out. No framework, nothing fetched. When it has set everything up it adds the
// element #ktstr-ready (the browser test looks for it); any error on the page is shown in
// #js-errors by the catcher at the top of <body>.
(function () {
  "use strict";

  function cellKey(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) return numeric ? -Infinity : "";
    if (numeric) {
      var v = parseFloat(cell.getAttribute("data-v"));
      return isNaN(v) ? -Infinity : v;
    }
    return cell.textContent.toLowerCase();
  }

  function sortBy(table, th, col) {
    var numeric = th.getAttribute("data-type") === "num";
    var asc = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) {
      return { row: row, key: cellKey(row, col, numeric), i: i };
    });
    keyed.sort(function (a, b) {
      var c = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
      return (asc ? c : -c) || a.i - b.i;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k.row); });
    body.appendChild(frag);
    Array.prototype.forEach.call(th.parentNode.cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }

  function setupTables() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      var heads = table.tHead.rows[0].cells;
      Array.prototype.forEach.call(heads, function (th, col) {
        th.tabIndex = 0;
        th.title = "sort by " + th.textContent;
        th.addEventListener("click", function () { sortBy(table, th, col); });
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, col); }
        });
      });
    });
    return tables.length;
  }

  function setupFilters() {
    var boxes = document.querySelectorAll("input.filter");
    Array.prototype.forEach.call(boxes, function (input) {
      var items = Array.prototype.slice.call(
        document.querySelectorAll(input.getAttribute("data-filter")));
      var texts = items.map(function (el) { return el.textContent.toLowerCase(); });
      var count = input.parentNode.querySelector(".count");
      function apply() {
        var q = input.value.trim().toLowerCase();
        var shown = 0;
        items.forEach(function (el, i) {
          var hit = q === "" || texts[i].indexOf(q) >= 0;
          el.hidden = !hit;
          if (hit) shown++;
        });
        count.textContent = q === "" ? items.length + " in all" : shown + " of " + items.length + " match";
      }
      input.addEventListener("input", apply);
      apply();
    });
    return boxes.length;
  }

  function setupButtons() {
    function each(sel, open) {
      Array.prototype.forEach.call(document.querySelectorAll(sel), function (d) {
        if (!d.hidden || !open) d.open = open;
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll("button[data-open]"), function (b) {
      b.addEventListener("click", function () { each(b.getAttribute("data-open"), true); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("button[data-close]"), function (b) {
      b.addEventListener("click", function () { each(b.getAttribute("data-close"), false); });
    });
  }

  function setupChart(figure) {
    var svg = figure.querySelector("svg.timeline");
    var script = figure.querySelector("script.chart-data");
    if (!svg || !script) return false;
    var data = JSON.parse(script.textContent);
    var cursor = svg.querySelector("line.cursor");
    var readout = figure.querySelector(".readout");
    var first = svg.querySelector("polyline.line");
    if (!first || data.ms.length === 0) return true;
    var xs = first.getAttribute("points").split(" ").map(function (p) {
      return parseFloat(p.split(",")[0]);
    });
    svg.addEventListener("mousemove", function (e) {
      var m = svg.getScreenCTM();
      if (!m) return;
      var pt = svg.createSVGPoint();
      pt.x = e.clientX;
      pt.y = e.clientY;
      var x = pt.matrixTransform(m.inverse()).x;
      var best = 0;
      for (var i = 1; i < xs.length; i++) {
        if (Math.abs(xs[i] - x) < Math.abs(xs[best] - x)) best = i;
      }
      cursor.setAttribute("x1", xs[best]);
      cursor.setAttribute("x2", xs[best]);
      cursor.setAttribute("visibility", "visible");
      readout.textContent = "at " + data.ms[best] + " ms: " + data.series.map(function (s) {
        return s[0] + "=" + s[1][best];
      }).join(", ");
    });
    svg.addEventListener("mouseleave", function () {
      cursor.setAttribute("visibility", "hidden");
    });
    return true;
  }

  var tables = setupTables();
  var filters = setupFilters();
  setupButtons();
  var charts = 0;
  Array.prototype.forEach.call(document.querySelectorAll("figure.chart"), function (f) {
    if (setupChart(f)) charts++;
  });
  var ready = document.createElement("p");
  ready.id = "ktstr-ready";
  ready.className = "ready";
  ready.textContent = "page script ran: " + tables + " sortable tables, " + filters +
    " filter boxes, " + charts + " charts";
  document.body.appendChild(ready);
})();
