// llmbench report: hover and zoom for the inline SVG charts. No network, no eval, no innerHTML:
// tooltip text is the chart marks' own <title> text, set with textContent.
(function () {
  "use strict";
  var tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  document.body.appendChild(tip);

  function markOf(el) {
    while (el && el.classList && !el.classList.contains("mark")) el = el.parentNode;
    return el && el.classList ? el : null;
  }
  // Move each mark's <title> into data so the browser's own tooltip does not double ours.
  var marks = document.querySelectorAll("svg.chart .mark");
  for (var i = 0; i < marks.length; i++) {
    var t = marks[i].querySelector("title");
    if (t) { marks[i].setAttribute("data-tip", t.textContent); t.parentNode.removeChild(t); }
  }
  document.addEventListener("mousemove", function (ev) {
    var m = markOf(ev.target);
    if (!m) { tip.hidden = true; return; }
    tip.textContent = m.getAttribute("data-tip") || "";
    tip.hidden = false;
    tip.style.left = Math.min(ev.pageX + 12, window.scrollX + window.innerWidth - 320) + "px";
    tip.style.top = ev.pageY + 14 + "px";
  });

  // Zoom: drag a box on a chart with data-zoom; double-click (or the reset button) restores.
  function point(svg, ev) {
    var p = svg.createSVGPoint();
    p.x = ev.clientX; p.y = ev.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  var zoomable = document.querySelectorAll("svg.chart[data-zoom]");
  for (var z = 0; z < zoomable.length; z++) (function (svg) {
    var home = svg.getAttribute("viewBox"), start = null, band = null;
    svg.addEventListener("mousedown", function (ev) {
      start = point(svg, ev);
      band = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      band.setAttribute("class", "band");
      svg.appendChild(band);
      ev.preventDefault();
    });
    svg.addEventListener("mousemove", function (ev) {
      if (!start) return;
      var p = point(svg, ev);
      band.setAttribute("x", Math.min(p.x, start.x)); band.setAttribute("y", Math.min(p.y, start.y));
      band.setAttribute("width", Math.abs(p.x - start.x));
      band.setAttribute("height", Math.abs(p.y - start.y));
    });
    window.addEventListener("mouseup", function (ev) {
      if (!start) return;
      var p = point(svg, ev), w = Math.abs(p.x - start.x), h = Math.abs(p.y - start.y);
      if (w > 8 && h > 8) {
        svg.setAttribute("viewBox", [Math.min(p.x, start.x), Math.min(p.y, start.y), w, h].join(" "));
        svg.classList.add("zoomed");
      }
      band.parentNode.removeChild(band);
      start = band = null;
    });
    function reset() { svg.setAttribute("viewBox", home); svg.classList.remove("zoomed"); }
    svg.addEventListener("dblclick", reset);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "reset";
    button.textContent = "reset zoom";
    button.addEventListener("click", reset);
    svg.parentNode.insertBefore(button, svg.nextSibling);
  })(zoomable[z]);

  // Sortable tables: click a header; numbers sort by the first number in the cell.
  function key(cell) {
    var m = /-?\d+(\.\d+)?(e[-+]?\d+)?/i.exec(cell.textContent);
    return m ? parseFloat(m[0]) : cell.textContent.toLowerCase();
  }
  var heads = document.querySelectorAll("table.sortable th");
  for (var h = 0; h < heads.length; h++) heads[h].addEventListener("click", function () {
    var th = this, table = th.closest("table"), col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
    for (var r = 0; r < rows.length; r++) body.appendChild(rows[r]);
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
