// greentrack dashboard: the runs table, rendered from the JSON blob in the page.
// Sort by clicking a header; filter with the box and the selects. The state lives in the query
// string (?q=&project=&status=&sort=&dir=), so a view can be bookmarked. No library, no request.
(function () {
  "use strict";
  var blob = JSON.parse(document.getElementById("runs-data").textContent);
  var cols = blob.columns;
  var at = {};
  cols.forEach(function (c, i) { at[c] = i; });
  var rows = blob.rows;
  var numeric = { duration_s: 1, energy_kwh: 1, facility_energy_kwh: 1, co2e_g: 1, embodied_g: 1, final: 1, page: 1 };
  var params = new URLSearchParams(window.location.search);
  var state = {
    q: params.get("q") || "",
    project: params.get("project") || "",
    status: params.get("status") || "",
    sort: at.hasOwnProperty(params.get("sort")) ? params.get("sort") : "started_at",
    dir: params.get("dir") === "asc" ? "asc" : "desc"
  };
  var tbody = document.querySelector("#runs tbody");
  var filterBox = document.getElementById("filter");
  var projectSel = document.getElementById("project");
  var statusSel = document.getElementById("status");
  var count = document.getElementById("count");

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function num(x, digits) {
    if (x == null) return "n/a";
    if (x === 0) return "0";
    var a = Math.abs(x);
    if (a >= 1e7 || a < 1e-3) return x.toExponential(digits - 1);
    if (a >= Math.pow(10, digits - 1)) return Math.round(x).toLocaleString("en-US");
    return x.toFixed(Math.max(0, digits - 1 - Math.floor(Math.log10(a))));
  }
  function haystack(r) {
    return [r[at.id], r[at.project], r[at.name], r[at.status], r[at.region], r[at.tags],
            r[at.metrics], r[at.methods]].join(" ").toLowerCase();
  }
  var hay = rows.map(haystack);

  function visible() {
    var terms = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    var out = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (state.project && r[at.project] !== state.project) continue;
      if (state.status && r[at.status] !== state.status) continue;
      var ok = true;
      for (var t = 0; t < terms.length; t++) {
        if (hay[i].indexOf(terms[t]) < 0) { ok = false; break; }
      }
      if (ok) out.push(r);
    }
    var k = at[state.sort], sign = state.dir === "asc" ? 1 : -1, isNum = numeric[state.sort];
    out.sort(function (a, b) {
      var x = a[k], y = b[k];
      if (x == null && y == null) return 0;
      if (x == null) return 1;   // missing values last, whatever the direction
      if (y == null) return -1;
      if (isNum) return sign * (x - y);
      return sign * String(x).localeCompare(String(y));
    });
    return out;
  }

  function render() {
    var list = visible();
    var html = [];
    for (var i = 0; i < list.length; i++) {
      var r = list[i];
      var id = esc(r[at.id]);
      var idCell = r[at.page] ? '<a href="runs/' + id + '.html">' + id.slice(0, 8) + "</a>" : id.slice(0, 8);
      html.push('<tr data-id="' + id + '"><td>' + idCell + (r[at.final] ? " ★" : "") +
        "</td><td>" + esc(r[at.project]) + "</td><td>" + esc(r[at.name]) + "</td><td>" +
        esc(r[at.status]) + "</td><td>" + esc((r[at.started_at] || "").slice(0, 19).replace("T", " ")) +
        '</td><td class="num">' + num(r[at.duration_s], 3) + '</td><td class="num">' +
        num(r[at.facility_energy_kwh], 3) + '</td><td class="num">' + num(r[at.co2e_g], 3) +
        '</td><td class="num">' + num(r[at.embodied_g], 3) +
        "</td><td>" + esc(r[at.methods]) + "</td><td>" + esc(r[at.region] || "") + "</td><td>" +
        esc(r[at.metrics]) + "</td></tr>");
    }
    tbody.innerHTML = html.join("");
    count.textContent = "showing " + list.length.toLocaleString("en-US") + " of " +
      rows.length.toLocaleString("en-US") + " runs";
    document.querySelectorAll("#runs th.sortable").forEach(function (th) {
      th.setAttribute("aria-sort", th.dataset.key === state.sort ?
        (state.dir === "asc" ? "ascending" : "descending") : "none");
    });
    var p = new URLSearchParams();
    ["q", "project", "status"].forEach(function (k) { if (state[k]) p.set(k, state[k]); });
    if (state.sort !== "started_at" || state.dir !== "desc") { p.set("sort", state.sort); p.set("dir", state.dir); }
    var qs = p.toString();
    try {
      window.history.replaceState(null, "", window.location.pathname + (qs ? "?" + qs : ""));
    } catch (e) { /* some browsers refuse replaceState on file:// URLs; the view still works */ }
  }

  filterBox.value = state.q;
  projectSel.value = state.project;
  statusSel.value = state.status;
  filterBox.addEventListener("input", function () { state.q = filterBox.value; render(); });
  projectSel.addEventListener("change", function () { state.project = projectSel.value; render(); });
  statusSel.addEventListener("change", function () { state.status = statusSel.value; render(); });
  document.querySelectorAll("#runs th.sortable").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.dataset.key;
      if (state.sort === key) state.dir = state.dir === "asc" ? "desc" : "asc";
      else { state.sort = key; state.dir = numeric[key] ? "desc" : "asc"; }
      render();
    });
  });
  window.greentrack = { state: state, render: render, visible: visible };
  render();
})();
