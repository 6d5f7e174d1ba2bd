"""The report page's stylesheet and script, inlined into `index.html` so the report works from disk, offline.

Kept as Python strings (not files) because the package ships only *.json/*.txt/*.md/*.tsv as data.
The script reads the records from `<script type="application/json" id="report-data">` and puts every
user string into the DOM with `textContent` or `setAttribute`, never `innerHTML`, so a description is
always text. It draws `page_size` cards, then another page whenever the "show more" button scrolls
into view (IntersectionObserver) or is clicked; `n=all` in the URL draws every card at once.
URL state (`#q=...&layer=...&sort=...&n=...`, or the same in `?...`): the hash wins over the query
string, and editing the controls rewrites the hash, so a filtered view can be shared as a link.
"""

CSS = r"""
:root { color-scheme: light dark; --bg: #fafafa; --fg: #1b1b1b; --card: #fff; --line: #ddd; --muted: #666; }
@media (prefers-color-scheme: dark) { :root { --bg: #151515; --fg: #e8e8e8; --card: #1f1f1f; --line: #333; --muted: #9a9a9a; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { position: sticky; top: 0; z-index: 2; background: var(--bg); border-bottom: 1px solid var(--line); padding: 10px 16px; }
h1 { font-size: 20px; margin: 0 0 2px; }
.sub { margin: 0 0 4px; color: var(--muted); font-size: 13px; }
#controls { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: center; margin-top: 6px; }
#controls input[type=search] { width: min(420px, 80vw); padding: 4px 6px; font: inherit; }
#controls select { font: inherit; padding: 3px; }
#count { color: var(--muted); font-size: 13px; }
main { padding: 8px 16px 24px; }
section.layer > h2 { font-size: 16px; margin: 18px 0 8px; font-family: ui-monospace, monospace; }
section.layer > h2 small { color: var(--muted); font-weight: normal; font-family: system-ui, sans-serif; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(336px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px; content-visibility: auto; contain-intrinsic-size: auto 300px; }
.card img { display: block; max-width: 100%; height: auto; image-rendering: auto; border-radius: 3px; background: #181818; }
.card .noimg { height: 40px; display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 12px; border: 1px dashed var(--line); border-radius: 3px; }
.card .desc { margin: 6px 0 2px; font-size: 15px; overflow-wrap: anywhere; }
.card .desc.none { color: var(--muted); font-style: italic; }
.card .meta { margin: 0; color: var(--muted); font: 12px ui-monospace, monospace; overflow-wrap: anywhere; }
#more { display: block; margin: 0 auto 32px; padding: 6px 18px; font: inherit; }
#more[hidden] { display: none; }
.empty { color: var(--muted); padding: 24px 0; }
"""

JS = r"""
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var C = {};
  data.columns.forEach(function (c, i) { C[c] = i; });
  var layerRank = Object.create(null);
  data.layers.forEach(function (l, i) { layerRank[l] = i; });
  var units = data.units.map(function (r, i) {
    var desc = r[C.description];
    return { pos: i, id: r[C.unit_id], layer: r[C.layer], unit: r[C.unit], desc: desc,
             thumb: r[C.thumb], w: r[C.width], h: r[C.height],
             key: desc === null ? "" : String(desc).toLowerCase(),
             hay: (r[C.unit_id] + "\n" + r[C.layer] + "\n" + (desc === null ? "" : desc)).toLowerCase() };
  });
  var SORTS = ["model", "desc-az", "desc-za", "id"];
  var pageSize = data.page_size || 120;
  var q = document.getElementById("q"), layerSel = document.getElementById("layer");
  var sortSel = document.getElementById("sort"), count = document.getElementById("count");
  var main = document.getElementById("report"), more = document.getElementById("more");

  function readState() {
    var search = new URLSearchParams(location.search);
    var hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    function get(k) { return hash.has(k) ? hash.get(k) : (search.get(k) || ""); }
    var s = { q: get("q"), layer: get("layer"), sort: get("sort") || "model", n: get("n") };
    if (SORTS.indexOf(s.sort) < 0) s.sort = "model";
    if (s.layer && !(s.layer in layerRank)) s.layer = "";
    return s;
  }
  var state = readState();

  function writeState() {
    var p = new URLSearchParams();
    if (state.q) p.set("q", state.q);
    if (state.layer) p.set("layer", state.layer);
    if (state.sort !== "model") p.set("sort", state.sort);
    if (state.n) p.set("n", state.n);
    var text = p.toString();
    try { history.replaceState(null, "", text ? "#" + text : location.pathname + location.search); } catch (e) {}
  }

  function cmp(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  var ORDER = {
    "model": function (a, b) { return cmp(a.unit === null ? -1 : a.unit, b.unit === null ? -1 : b.unit) || cmp(a.pos, b.pos); },
    "desc-az": function (a, b) { return cmp(a.desc === null, b.desc === null) || cmp(a.key, b.key) || cmp(a.id, b.id); },
    "desc-za": function (a, b) { return cmp(a.desc === null, b.desc === null) || cmp(b.key, a.key) || cmp(a.id, b.id); },
    "id": function (a, b) { return cmp(a.id, b.id); }
  };

  var list = [], drawn = 0, sectionLayer = null, grid = null, perLayer = Object.create(null);

  function card(u) {
    var el = document.createElement("article");
    el.className = "card";
    el.setAttribute("data-unit-id", u.id);
    el.setAttribute("data-layer", u.layer);
    if (u.thumb) {
      var img = document.createElement("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.width = u.w;
      img.height = u.h;
      img.alt = "top images of " + u.id;
      img.addEventListener("load", function () { el.setAttribute("data-loaded", "1"); });
      img.src = u.thumb;
      el.appendChild(img);
    } else {
      var none = document.createElement("div");
      none.className = "noimg";
      none.textContent = "no exemplars";
      el.appendChild(none);
    }
    var d = document.createElement("p");
    d.className = "desc";
    if (u.desc === null) { d.textContent = "(not described)"; d.classList.add("none"); }
    else d.textContent = u.desc;
    el.appendChild(d);
    var m = document.createElement("p");
    m.className = "meta";
    m.textContent = u.id;
    el.appendChild(m);
    return el;
  }

  function draw(n) {
    var end = Math.min(list.length, drawn + n);
    for (; drawn < end; drawn++) {
      var u = list[drawn];
      if (u.layer !== sectionLayer) {
        sectionLayer = u.layer;
        var sec = document.createElement("section");
        sec.className = "layer";
        sec.setAttribute("data-layer", u.layer);
        var h = document.createElement("h2");
        h.textContent = u.layer + " ";
        var small = document.createElement("small");
        small.textContent = perLayer[u.layer] + " unit" + (perLayer[u.layer] === 1 ? "" : "s");
        h.appendChild(small);
        grid = document.createElement("div");
        grid.className = "grid";
        sec.appendChild(h);
        sec.appendChild(grid);
        main.appendChild(sec);
      }
      grid.appendChild(card(u));
    }
    main.setAttribute("data-shown", String(drawn));
    more.hidden = drawn >= list.length;
    more.textContent = "show more (" + (list.length - drawn) + " left)";
  }

  function refresh() {
    // every term must start a word ("dog" finds "dogs" and "dog-like", not "hotdog"; "red" not "checkered")
    var terms = state.q.toLowerCase().split(/\s+/).filter(Boolean).map(function (t) {
      return new RegExp("(?:^|[^\\p{L}\\p{N}])" + t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "u");
    });
    var order = ORDER[state.sort];
    list = units.filter(function (u) {
      if (state.layer && u.layer !== state.layer) return false;
      for (var i = 0; i < terms.length; i++) if (!terms[i].test(u.hay)) return false;
      return true;
    });
    list.sort(function (a, b) { return cmp(layerRank[a.layer], layerRank[b.layer]) || order(a, b); });
    perLayer = Object.create(null);
    list.forEach(function (u) { perLayer[u.layer] = (perLayer[u.layer] || 0) + 1; });
    main.textContent = "";
    drawn = 0; sectionLayer = null; grid = null;
    count.textContent = list.length + " of " + units.length + " units";
    main.setAttribute("data-matches", String(list.length));
    if (!list.length) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No unit matches.";
      main.appendChild(p);
    }
    var first = state.n === "all" ? list.length : (parseInt(state.n, 10) > 0 ? parseInt(state.n, 10) : pageSize);
    draw(first);
    fill();
  }

  // While the "show more" button is within the observer's 600 px of the viewport, draw more now: a
  // short first page fills the screen at once instead of waiting for the observer's first callback.
  function fill() {
    while (!more.hidden && more.getBoundingClientRect().top < window.innerHeight + 600) draw(pageSize);
  }

  function syncControls() { q.value = state.q; layerSel.value = state.layer; sortSel.value = state.sort; }

  var timer = null;
  q.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = q.value; writeState(); refresh(); }, 120);
  });
  layerSel.addEventListener("change", function () { state.layer = layerSel.value; writeState(); refresh(); });
  sortSel.addEventListener("change", function () { state.sort = sortSel.value; writeState(); refresh(); });
  more.addEventListener("click", function () { draw(pageSize); });
  window.addEventListener("hashchange", function () { state = readState(); syncControls(); refresh(); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && document.activeElement !== q) { e.preventDefault(); q.focus(); }
  });
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      if (entries.some(function (en) { return en.isIntersecting; }) && !more.hidden) {
        draw(pageSize);
        io.unobserve(more); io.observe(more);  // still in view after drawing: the fresh observation says so
      }
    }, { rootMargin: "600px" });
    io.observe(more);
  }
  syncControls();
  refresh();
  document.body.setAttribute("data-ready", "1");
})();
"""
