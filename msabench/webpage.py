"""The leaderboard as one static HTML page: no server, no network, nothing but this file.

`leaderboard.write(html=True)` hands over what it computed for the markdown (verdicts, intervals,
curves with their bands, published rows); this module only lays it out. The data travels inside
the page as JSON and a short script draws it: sortable tables, each protocol's robustness curves
with every model toggled on and off, and a models x protocols overview. Accuracies and F1 are shown
in percent, as papers give them; MAE and Corr as they are.
"""

from __future__ import annotations

import html
import json
import math


def _clean(x):
    """JSON-safe: NaN and inf become null (the page shows them as '-')."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def render(title: str, command: str, sections: list[dict]) -> str:
    """The page. `sections`: one dict per protocol (see `leaderboard.page_section`)."""
    data = json.dumps(_clean({"title": title, "command": command, "sections": sections}), allow_nan=False)
    data = data.replace("</", "<\\/")  # no model name can close the script element
    return _PAGE.replace("@TITLE@", html.escape(title)).replace("@DATA@", data)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 16px 48px; color: #1a1a1a; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
td.name, th.name { text-align: left; }
tr.worse td { color: #777; } td.kept { font-weight: 600; }
.summary { background: #f6f8fa; border-left: 4px solid #0072B2; padding: 6px 10px; }
.chart { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.legend label { display: block; cursor: pointer; white-space: nowrap; }
.legend .swatch { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 6px; }
.note { color: #555; font-size: 0.92em; }
#overview, .section { overflow-x: auto; }
.published td { background: #fffbea; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
</style>
</head>
<body>
<h1 id="title"></h1>
<p class="note" id="command"></p>
<h2>Overview: rank of each model on each protocol</h2>
<p class="note">Rank by the protocol's primary metric (mean over conditions and seeds); bold: not shown worse than
the best (closed testing at the board's alpha); "-": not run. Click a header to sort.</p>
<div id="overview"></div>
<div id="sections"></div>
<script type="application/json" id="board-data">@DATA@</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("board-data").textContent);
// Okabe & Ito's colour-blind safe palette; after eight models the dash pattern changes too
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function fmt(v, pct, digits) {
  if (v === null || v === undefined) return "-";
  return pct ? (100 * v).toFixed(digits === undefined ? 2 : digits) : v.toFixed(digits === undefined ? 4 : digits);
}
function signed(v, pct) { return v === null ? "-" : (v >= 0 ? "+" : "") + fmt(v, pct); }

function table(headers, rows, cls) {
  // rows: [{cells: [[text, sortKey], ...], cls}]; a header click sorts by its column's keys
  const t = el("table", {class: "sortable " + (cls || "")});
  const head = el("tr");
  headers.forEach((h, i) => head.appendChild(el("th", {class: i <= 1 ? "name" : ""}, h)));
  t.appendChild(el("thead")).appendChild(head);
  const body = t.appendChild(el("tbody"));
  for (const r of rows) {
    const tr = el("tr", {class: r.cls || ""});
    r.cells.forEach(([text, key, c], i) => {
      const td = el("td", {class: (i <= 1 ? "name " : "") + (c || "")}, text);
      td.dataset.key = key === null || key === undefined ? "" : String(key);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  head.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => sortBy(t, th, col)));
  return t;
}
function sortBy(t, th, col) {
  const asc = th.getAttribute("aria-sort") !== "ascending";
  t.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  const body = t.tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => r.cells[col].dataset.key;
  const numeric = rows.every(r => key(r) === "" || !isNaN(Number(key(r))));
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");  // missing values last either way
    const c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return asc ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}

function overview() {
  const sections = DATA.sections.filter(s => s.rows.length);
  const models = [];
  for (const s of sections) for (const r of s.rows) if (!models.includes(r.display)) models.push(r.display);
  const rows = models.map(m => ({cells: [[m, m], ...sections.map(s => {
    const r = s.rows.find(x => x.display === m);
    if (!r) return ["-", null];
    return [r.rank + " (" + fmt(r.value, s.percent) + ")", r.rank, r.verdict === "worse" ? "" : "kept"];
  })]}));
  const t = table(["model", ...sections.map(s => s.name)], rows, "overview");
  t.querySelectorAll("th")[0].classList.add("name");
  document.getElementById("overview").appendChild(t);
}

function chart(s, where) {
  const W = 640, H = 360, L = 56, R = 12, T = 12, B = 44;
  const models = Object.keys(s.curves);
  const root = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
                           "aria-label": s.name + ": " + s.metric + " per condition"});
  const inter = s.x === null;
  const n = s.conditions.length;
  let lo = Infinity, hi = -Infinity;
  for (const m of models) for (const k of ["lo", "hi", "y"]) for (const v of s.curves[m][k]) if (v !== null) {
    lo = Math.min(lo, v); hi = Math.max(hi, v);
  }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.05 || 0.01; lo -= pad; hi += pad;
  if (s.percent) { lo = Math.max(lo, 0); hi = Math.min(hi, 1); }  // a band past 0% or 100% is drawn to the edge
  const xs = inter ? s.conditions.map((_, i) => i) : s.x;
  const x0 = Math.min(...xs) - (inter ? 0.5 : 0), x1 = Math.max(...xs) + (inter ? 0.5 : 0);
  const X = v => L + (v - x0) / (x1 - x0 || 1) * (W - L - R);
  const Y = v => T + (hi - Math.min(hi, Math.max(lo, v))) / (hi - lo) * (H - T - B);
  for (let i = 0; i <= 5; i++) {
    const v = lo + (hi - lo) * i / 5;
    root.appendChild(svg("line", {x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#e5e5e5"}));
    const t = svg("text", {x: L - 6, y: Y(v) + 4, "text-anchor": "end"}); t.textContent = fmt(v, s.percent, 1);
    root.appendChild(t);
  }
  xs.forEach((v, i) => {
    const t = svg("text", {x: X(v), y: H - B + 16, "text-anchor": "middle"});
    t.textContent = inter ? s.conditions[i] : String(v); root.appendChild(t);
  });
  const xl = svg("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle"});
  xl.textContent = inter ? "available modalities" : "missing rate r"; root.appendChild(xl);
  const legend = el("div", {class: "legend"});
  models.forEach((m, k) => {
    const colour = COLOURS[k % COLOURS.length], dash = DASHES[Math.floor(k / COLOURS.length) % DASHES.length];
    const g = svg("g", {class: "curve", "data-model": m});
    const c = s.curves[m];
    const dodge = inter ? (k - (models.length - 1) / 2) * Math.min(0.6 / models.length, 0.08) : 0;
    const pts = xs.map((v, i) => [X(v + dodge), c.y[i], c.lo[i], c.hi[i]]).filter(p => p[1] !== null);
    if (inter) {  // categories: grouped points with their intervals, never joined by lines
      for (const [px, y, a, b] of pts) {
        if (a !== null && b !== null) g.appendChild(svg("line", {x1: px, x2: px, y1: Y(a), y2: Y(b), stroke: colour}));
        g.appendChild(svg("circle", {cx: px, cy: Y(y), r: 3.5, fill: colour}));
      }
    } else {
      const band = pts.filter(p => p[2] !== null && p[3] !== null);
      if (band.length > 1) {
        const poly = band.map(p => `${p[0]},${Y(p[3])}`).concat(band.slice().reverse().map(p => `${p[0]},${Y(p[2])}`));
        g.appendChild(svg("polygon", {points: poly.join(" "), fill: colour, "fill-opacity": 0.12, stroke: "none"}));
      }
      g.appendChild(svg("polyline", {points: pts.map(p => `${p[0]},${Y(p[1])}`).join(" "), fill: "none",
                                     stroke: colour, "stroke-width": 2, "stroke-dasharray": dash}));
      for (const [px, y] of pts) g.appendChild(svg("circle", {cx: px, cy: Y(y), r: 2.5, fill: colour}));
    }
    const title = svg("title"); title.textContent = m; g.appendChild(title);
    root.appendChild(g);
    const label = el("label");
    const box = el("input", {type: "checkbox", "data-model": m});
    box.checked = true;
    box.addEventListener("change", () => { g.style.display = box.checked ? "" : "none"; });
    const sw = el("span", {class: "swatch"});
    sw.style.background = colour; if (dash) sw.style.background = `repeating-linear-gradient(90deg, ${colour} 0 5px, transparent 5px 8px)`;
    label.append(box, sw, document.createTextNode(m));
    legend.appendChild(label);
  });
  const box = el("div", {class: "chart"});
  box.append(root, legend);
  where.appendChild(box);
}

function section(s) {
  const div = el("div", {class: "section", id: "p-" + s.name});
  div.appendChild(el("h3", {}, s.name));
  div.appendChild(el("p", {class: "note"}, s.description));
  if (s.summary) div.appendChild(el("p", {class: "summary"}, s.summary));
  if (s.rows.length) {
    const unit = s.percent ? " (%)" : "";
    const rows = s.rows.map(r => ({cls: r.verdict === "worse" ? "worse" : "", cells: [
      [String(r.rank), r.rank], [r.display, r.display], [String(r.seeds), r.seeds],
      [fmt(r.value, s.percent) + (r.sd === null ? "" : " \\u00B1 " + fmt(r.sd, s.percent)), r.value],
      [r.rival ? signed(r.diff, s.percent) + " [" + signed(r.lo, s.percent) + ", " + signed(r.hi, s.percent) + "] vs "
        + r.rival : "-", r.diff],
      [r.coverage === null ? "-" : (100 * r.coverage).toPrecision(4) + "%", r.coverage],
      [r.p === null ? "-" : r.p.toPrecision(2), r.p], [fmt(r.mde, s.percent), r.mde],
      [r.verdict || "-", r.verdict, r.verdict === "worse" ? "" : "kept"]]}));
    div.appendChild(table(["#", "model", "seeds", s.metric + unit, "\\u0394 vs rival [interval]" + unit, "coverage",
                           "p (closed test)", "MDE" + unit, "verdict"], rows, "main"));
    div.appendChild(el("p", {class: "note"}, s.method));
    if (Object.keys(s.curves).length) chart(s, div);
  } else {
    div.appendChild(el("p", {class: "note"}, "No measured results (the data files are not in the repository)."));
  }
  if (s.published.length) {
    div.appendChild(el("p", {class: "note"}, "As published, not re-run: never ranked or tested with the measured rows."));
    const keys = s.published_columns;
    const rows = s.published.map(r => ({cells: keys.map(k => [r[k] === null ? "-" : String(r[k]), r[k]])}));
    div.appendChild(table(keys, rows, "published"));
  }
  return div;
}

document.getElementById("title").textContent = DATA.title;
document.getElementById("command").textContent = DATA.command ? "Produced by: " + DATA.command : "";
overview();
let dataset = null;
const holder = document.getElementById("sections");
for (const s of DATA.sections) {
  if (s.dataset !== dataset) { holder.appendChild(el("h2", {}, s.dataset_title)); dataset = s.dataset; }
  holder.appendChild(section(s));
}
</script>
</body>
</html>
"""
