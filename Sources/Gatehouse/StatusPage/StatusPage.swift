/// The status page served at `GET /`: one self-contained HTML document (inline CSS and JS, no external
/// assets). Its data is pushed over the `/api/status/ws` WebSocket once a second (`StatusFeedHandler`) and it
/// redraws in place: the gateway, the spool, the devices with their latest telemetry and a sparkline per numeric
/// key (the last five minutes, kept in the browser), thermostats' temperature against the reported and desired
/// setpoint (a pending delta marked), and a live tile per live-capable camera that plays its WebSocket stream
/// (§8) when opened with a viewer token from the page's `?token=`.
enum StatusPage {
    static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Gatehouse</title>
<link rel="icon" href="data:,">
<style>
:root{--bg:#f5f6f8;--fg:#1c2230;--mute:#697386;--card:#fff;--line:#e2e5ea;--ok:#137a3b;--okbg:#dcf5e4;--bad:#b42318;--badbg:#fde4e1;--acc:#2f6fde;--warn:#c2710c;--track:#e6e8ec}
@media (prefers-color-scheme:dark){:root{--bg:#0f1318;--fg:#e3e6ea;--mute:#98a2b3;--card:#171c23;--line:#29313c;--ok:#5ad28a;--okbg:#15301f;--bad:#ff7b6e;--badbg:#3a1714;--acc:#6aa2ff;--warn:#f0a53a;--track:#29313c}}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{display:flex;align-items:center;gap:10px;padding:12px 24px;background:var(--card);border-bottom:1px solid var(--line)}
header svg{flex:none}
h1{font-size:17px;margin:0;font-weight:650}
.sp{flex:1}
.mute{color:var(--mute)}
#banner{background:var(--bad);color:#fff;padding:8px 24px;font-weight:600}
#banner span{font-weight:400;opacity:.85;margin-left:6px}
main{max-width:1240px;margin:0 auto;padding:16px 24px 32px}
.stale main{opacity:.55}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(360px,100%),1fr));gap:16px;margin-bottom:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 18px}
h2{font-size:12px;text-transform:uppercase;letter-spacing:.07em;color:var(--mute);margin:0 0 10px;font-weight:650}
dl{display:grid;grid-template-columns:max-content 1fr;gap:5px 18px;margin:0}
dl>div{display:contents}
dt{color:var(--mute)}
dd{margin:0}
dd,td{font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;line-height:20px;margin-right:6px}
.ok{color:var(--ok);background:var(--okbg)}
.bad{color:var(--bad);background:var(--badbg)}
.hot{color:var(--bad);font-weight:600}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.bar{height:10px;background:var(--track);border-radius:5px;overflow:hidden;margin:2px 0 4px}
.bar i{display:block;height:100%;width:0;background:var(--acc);transition:width .5s}
.bar.warn i{background:var(--warn)}
.bar.full i{background:var(--bad)}
.fill{font-size:12px;margin-bottom:12px}
.tools{display:flex;align-items:center;gap:12px;margin-bottom:8px}
.tools h2{margin:0}
input{font:inherit;padding:4px 10px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);width:240px;min-width:0}
#updated{white-space:nowrap}
.wrap{overflow-x:auto}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-size:12px;color:var(--mute);font-weight:600}
.n{text-align:right}
tbody tr:last-child td{border-bottom:0}
tbody tr:hover td{background:var(--bg)}
tr.empty td{color:var(--mute);text-align:center;padding:20px}
td[title]{cursor:help}
#updated:empty::after{content:"waiting for first update"}
.tele{display:flex;flex-wrap:wrap;gap:4px 14px;white-space:normal;min-width:260px}
.kv{display:inline-flex;align-items:center;gap:5px}
.kv b{font-weight:600}
.spark{width:90px;height:20px;vertical-align:middle}
.spark polyline{fill:none;stroke:var(--acc);stroke-width:1.5}
.pending{color:var(--warn);font-weight:600}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}
.tile{border:1px solid var(--line);border-radius:8px;overflow:hidden;background:var(--bg)}
.tile .pic{aspect-ratio:16/9;background:#111;display:flex;align-items:center;justify-content:center;color:#aaa;font-size:13px}
.tile img{width:100%;height:100%;object-fit:contain;display:block}
.tile .bar2{display:flex;align-items:center;gap:8px;padding:6px 10px}
.tile button{font:inherit;padding:2px 10px;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg);cursor:pointer}
@media (max-width:600px){header,main{padding-left:12px;padding-right:12px}#header-id{display:none}}
</style>
</head>
<body>
<header>
<svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" aria-hidden="true"><path d="M3 21V9l9-6 9 6v12"/><path d="M9 21v-7h6v7"/></svg>
<h1>Gatehouse</h1><span class="mono mute" id="header-id"></span><span class="sp"></span><span class="mute" id="updated"></span>
</header>
<div id="banner" role="alert" hidden>gateway unreachable — retrying<span id="banner-detail"></span></div>
<main>
<div class="grid">
<section class="card"><h2>Gateway</h2>
<dl>
<div><dt>ID</dt><dd class="mono" id="gateway-id">—</dd></div>
<div><dt>Version</dt><dd id="version">—</dd></div>
<div><dt>Uptime</dt><dd id="uptime">—</dd></div>
<div><dt>Ready</dt><dd><span id="ready" class="badge">—</span><span id="listening" class="badge bad" hidden>not listening</span></dd></div>
<div><dt>Broker</dt><dd><span id="broker" class="badge">—</span><span class="mono" id="broker-addr"></span></dd></div>
<div id="row-embedded" hidden><dt>Embedded broker</dt><dd><span id="embedded-state" class="badge"></span><span id="embedded-info"></span></dd></div>
<div><dt>Devices connected</dt><dd id="devices-connected">—</dd></div>
<div><dt>Messages in</dt><dd id="msg-in">—</dd></div>
<div><dt>Messages out</dt><dd id="msg-out">—</dd></div>
</dl>
</section>
<section class="card"><h2>Spool</h2>
<div class="bar" id="spool-bar"><i id="spool-fill"></i></div>
<div class="fill mute" id="spool-fill-text">—</div>
<dl>
<div><dt>Entries</dt><dd id="spool-entries">—</dd></div>
<div><dt>Size</dt><dd id="spool-bytes">—</dd></div>
<div><dt>Oldest entry</dt><dd id="spool-oldest">—</dd></div>
<div><dt>Dropped</dt><dd id="spool-dropped">—</dd></div>
<div><dt>Expired</dt><dd id="spool-expired">—</dd></div>
</dl>
</section>
</div>
<section class="card">
<div class="tools"><h2>Devices</h2><span class="mute" id="devices-count"></span><span class="sp"></span>
<input id="filter" type="search" placeholder="Filter by device or kind" aria-label="Filter devices" autocomplete="off"></div>
<div class="wrap"><table id="devices">
<thead><tr><th>Device</th><th>Kind</th><th>Session</th><th>Connected</th><th>Last seen</th><th>Remote</th><th class="n">Messages in</th><th class="n">Msg/s</th><th>Desired</th><th>Latest telemetry (last 5 min)</th></tr></thead>
<tbody><tr class="empty"><td colspan="9">loading…</td></tr></tbody>
</table></div>
</section>
<section class="card" id="cameras-card" hidden style="margin-top:16px">
<div class="tools"><h2>Live cameras</h2><span class="mute" id="live-hint"></span></div>
<div class="tiles" id="tiles"></div>
</section>
</main>
<script>
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var last = null;
  var filter = $("filter");
  try { filter.value = sessionStorage.getItem("gatehouse.filter") || ""; } catch (e) {}

  function set(id, value) {
    var el = $(id), s = value == null ? "—" : String(value);
    if (el.textContent !== s) el.textContent = s;
    return el;
  }
  function badge(id, ok, yes, no) {
    var el = set(id, ok ? yes : no);
    el.className = "badge " + (ok ? "ok" : "bad");
  }
  function dur(sec) {
    var s = Math.max(0, Math.floor(Number(sec) || 0));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + x + "s";
    return x + "s";
  }
  function ago(ms, now) {
    if (ms == null) return "—";
    var s = (now - ms) / 1000;
    return s < 1 ? "just now" : dur(s).split(" ")[0] + " ago";
  }
  function when(ms) { return ms == null ? "" : new Date(ms).toLocaleString(); }
  function bytes(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    n = Number(n) || 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 100 ? 1 : 0) : n) + " " + u[i];
  }
  function rate(v) { v = Number(v) || 0; return v >= 100 ? String(Math.round(v)) : v.toFixed(1); }
  function count(v) { return v == null ? "—" : Number(v).toLocaleString("en-US"); }
  function warnCount(id, v) { set(id, count(v)).className = v > 0 ? "hot" : ""; }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "—" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(d) {
    var g = d.gateway || {}, sp = d.spool || {}, eb = g.embedded_broker;
    set("gateway-id", g.id);
    set("header-id", g.id || "");
    document.title = (g.id ? g.id + " · " : "") + "Gatehouse";
    set("version", g.version);
    set("uptime", dur(g.uptime_s)).title = count(g.uptime_s) + " s";
    badge("ready", g.ready, "ready", "not ready");
    $("listening").hidden = g.listening !== false;
    badge("broker", g.broker_connected, "connected", "disconnected");
    set("broker-addr", g.broker || "");
    $("row-embedded").hidden = !eb;
    if (eb) {
      badge("embedded-state", eb.running, "running", "stopped");
      var parts = [];
      if (eb.pid != null) parts.push("pid " + eb.pid);
      if (eb.port != null) parts.push("port " + eb.port);
      parts.push(count(eb.restarts) + (eb.restarts === 1 ? " restart" : " restarts"));
      set("embedded-info", parts.join(" · "));
    }
    set("devices-connected", count(g.devices_connected));
    set("msg-in", rate(g.messages_in_per_s) + " /s");
    set("msg-out", rate(g.messages_out_per_s) + " /s");

    var max = Number(sp.max_bytes) || 0, used = Number(sp.bytes) || 0;
    var pct = max ? Math.min(100, 100 * used / max) : 0;
    $("spool-fill").style.width = pct + "%";
    $("spool-bar").className = "bar" + (pct >= 90 ? " full" : pct >= 70 ? " warn" : "");
    set("spool-fill-text", bytes(used) + " of " + (max ? bytes(max) : "unlimited") + " (" + pct.toFixed(pct < 10 ? 1 : 0) + "% full)");
    set("spool-entries", count(sp.entries));
    set("spool-bytes", bytes(used));
    set("spool-oldest", sp.entries ? dur(sp.oldest_age_s) : "—");
    warnCount("spool-dropped", sp.dropped);
    warnCount("spool-expired", sp.expired);
    renderDevices();
  }

  // Telemetry history per device and numeric key, kept here for the sparklines: five minutes, 300 points at most.
  var HISTORY_MS = 5 * 60 * 1000, MAX_POINTS = 300, history = {};
  function remember(r) {
    var t = r.telemetry;
    if (!t || !t.data) return;
    var h = history[r.device] || (history[r.device] = { ts: null, keys: {} });
    if (h.ts === t.ts) return;
    h.ts = t.ts;
    Object.keys(t.data).forEach(function (k) {
      var v = t.data[k];
      if (typeof v !== "number" || !isFinite(v)) return;
      var pts = h.keys[k] || (h.keys[k] = []);
      pts.push([t.ts, v]);
      while (pts.length > MAX_POINTS || (pts.length && pts[0][0] < t.ts - HISTORY_MS)) pts.shift();
    });
  }
  var SVG = "http://www.w3.org/2000/svg";
  function spark(pts, key) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 90 20");
    svg.setAttribute("data-key", key);
    svg.setAttribute("data-points", String(pts.length));
    var lo = Infinity, hi = -Infinity, t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    pts.forEach(function (p) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); });
    var line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.map(function (p) {
      var x = t1 > t0 ? 1 + 88 * (p[0] - t0) / (t1 - t0) : 89;
      var y = hi > lo ? 18 - 16 * (p[1] - lo) / (hi - lo) : 10;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    svg.appendChild(line);
    var title = document.createElementNS(SVG, "title");
    title.textContent = key + ": " + pts.length + " values, " + lo + " to " + hi;
    svg.appendChild(title);
    return svg;
  }
  function num(v) { return typeof v === "number" ? String(Math.round(v * 100) / 100) : typeof v === "string" ? v : JSON.stringify(v); }
  function kv(parent, key, text, cls) {
    var span = document.createElement("span");
    span.className = "kv" + (cls ? " " + cls : "");
    var b = document.createElement("b");
    b.textContent = key;
    span.appendChild(b);
    span.appendChild(document.createTextNode(" " + text));
    parent.appendChild(span);
    return span;
  }
  // Thermostats: temperature against the reported setpoint and the desired one (from a pending delta).
  function thermostat(div, r) {
    var data = (r.telemetry && r.telemetry.data) || {};
    var reported = r.reported || {}, delta = r.delta || {};
    var temp = data.temperature != null ? data.temperature : reported.temperature;
    var sp = reported.setpoint != null ? reported.setpoint : data.setpoint;
    if (temp != null) kv(div, "temp", num(temp) + " °C");
    if (sp != null || delta.setpoint != null) kv(div, "setpoint", sp == null ? "—" : num(sp) + " °C");
    if (delta.setpoint != null) {
      var p = kv(div, "desired", num(delta.setpoint) + " °C (pending)", "pending");
      p.setAttribute("data-pending", "setpoint");
      if (r.delta_pending_since) p.title = "pending since " + when(r.delta_pending_since);
    } else if (sp != null && r.desired_version != null) {
      kv(div, "desired", num(sp) + " °C (in sync)");
    }
  }
  function telemetryCell(tr, r) {
    var td = cell(tr, "");
    var div = document.createElement("div");
    div.className = "tele";
    td.appendChild(div);
    td.setAttribute("data-telemetry", r.device);
    if (r.kind === "thermostat") thermostat(div, r);
    var data = (r.telemetry && r.telemetry.data) || {}, h = history[r.device];
    Object.keys(data).forEach(function (k) {
      if (r.kind === "thermostat" && (k === "temperature" || k === "setpoint")) return;
      var span = kv(div, k, num(data[k]));
      var pts = h && h.keys[k];
      if (pts && pts.length > 1) span.appendChild(spark(pts, k));
    });
    if (r.kind === "thermostat" && h && h.keys.temperature && h.keys.temperature.length > 1) {
      div.firstChild && div.firstChild.appendChild(spark(h.keys.temperature, "temperature"));
    }
    if (!div.childNodes.length) td.textContent = "—";
  }

  function renderDevices() {
    if (!last) return;
    var list = (last.devices || []).slice(), now = last.ts || Date.now();
    var q = filter.value.trim().toLowerCase();
    list.sort(function (a, b) { return a.device < b.device ? -1 : a.device > b.device ? 1 : 0; });
    var shown = !q ? list : list.filter(function (r) {
      return String(r.device).toLowerCase().indexOf(q) >= 0 || String(r.kind || "").toLowerCase().indexOf(q) >= 0;
    });
    var rows = shown.map(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-device", r.device);
      cell(tr, r.device, "mono");
      cell(tr, r.kind);
      cell(tr, r.session, "mono mute");
      cell(tr, ago(r.connected_at, now)).title = when(r.connected_at);
      cell(tr, ago(r.last_seen, now)).title = when(r.last_seen);
      cell(tr, r.remote, "mono");
      cell(tr, count(r.messages_in), "n");
      cell(tr, rate(r.messages_per_s), "n");
      // Desired state (§7): pending since when, in sync, or none.
      var pending = r.delta && Object.keys(r.delta).length;
      var d = cell(tr, r.desired_version == null ? "—" : pending ? "pending since " + ago(r.delta_pending_since, now) : "in sync", pending ? "hot" : "mute");
      if (pending) d.title = JSON.stringify(r.delta) + " since " + when(r.delta_pending_since);
      telemetryCell(tr, r);
      return tr;
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      cell(tr, list.length ? "no devices match the filter" : "no devices connected").colSpan = 9;
      rows.push(tr);
    }
    $("devices").tBodies[0].replaceChildren.apply($("devices").tBodies[0], rows);
    set("devices-count", q ? shown.length + " of " + list.length : String(list.length));
  }

  // Live tiles: one per live-capable camera; the stream runs only while the tile is open (PROTOCOL.md §8).
  var token = new URLSearchParams(location.search).get("token"), tiles = {};
  function wsURL(path) {
    var base = new URL(path, location.href);
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    return base.href;
  }
  function tileFor(r) {
    var t = tiles[r.device];
    if (t) return t;
    var el = document.createElement("div");
    el.className = "tile";
    el.setAttribute("data-live", r.device);
    el.setAttribute("data-frames", "0");
    el.innerHTML = '<div class="pic"><span class="msg"></span></div><div class="bar2"><b class="mono"></b>' +
      '<span class="mute state"></span><span class="sp"></span><button type="button"></button></div>';
    el.querySelector("b").textContent = r.device;
    t = tiles[r.device] = { el: el, ws: null, url: null, frames: 0, device: r.device };
    var button = el.querySelector("button");
    button.hidden = !token;
    button.textContent = "Watch";
    button.addEventListener("click", function () { t.ws ? stopTile(t) : startTile(t); });
    el.querySelector(".msg").textContent = token ? "closed: press Watch" : "no picture without a viewer token (open this page with ?token=)";
    $("tiles").appendChild(el);
    return t;
  }
  function startTile(t) {
    var ws = new WebSocket(wsURL("v1/live/" + encodeURIComponent(t.device) + "?token=" + encodeURIComponent(token)));
    ws.binaryType = "blob";
    t.ws = ws;
    t.el.querySelector("button").textContent = "Close";
    t.el.querySelector(".state").textContent = "connecting…";
    ws.onmessage = function (e) {
      if (typeof e.data === "string") {
        try { t.el.querySelector(".state").textContent = JSON.parse(e.data).state || ""; } catch (x) {}
        return;
      }
      var url = URL.createObjectURL(e.data), pic = t.el.querySelector(".pic"), img = pic.querySelector("img");
      if (!img) { img = document.createElement("img"); img.alt = t.device + " live"; pic.replaceChildren(img); }
      img.src = url;
      if (t.url) URL.revokeObjectURL(t.url);
      t.url = url;
      t.frames++;
      t.el.setAttribute("data-frames", String(t.frames));
    };
    ws.onclose = function (e) {
      if (t.ws !== ws) return;
      t.ws = null;
      t.el.querySelector("button").textContent = "Watch";
      t.el.querySelector(".state").textContent = e.code === 1000 ? "closed" : "closed (" + e.code + (e.reason ? " " + e.reason : "") + ")";
    };
  }
  function stopTile(t) {
    var ws = t.ws;
    t.ws = null;
    if (ws) ws.close(1000);
    t.el.querySelector("button").textContent = "Watch";
    t.el.querySelector(".state").textContent = "closed";
  }
  function renderTiles() {
    var seen = {};
    (last.devices || []).forEach(function (r) {
      if (!r.live) return;
      seen[r.device] = true;
      var t = tileFor(r);
      t.el.title = r.live.viewers + (r.live.viewers === 1 ? " viewer" : " viewers") + (r.live.fps ? " at " + r.live.fps + " fps" : "");
    });
    Object.keys(tiles).forEach(function (d) {
      if (seen[d]) return;
      stopTile(tiles[d]);
      tiles[d].el.remove();
      delete tiles[d];
    });
    $("cameras-card").hidden = !Object.keys(tiles).length;
    set("live-hint", token ? "" : "add ?token=<viewer token> to this page's URL to watch");
  }

  function down(msg) {
    $("banner").hidden = !msg;
    document.body.classList.toggle("stale", !!msg);
    if (msg) set("banner-detail", "(" + msg + ")");
  }

  function receive(d) {
    last = d;
    (d.devices || []).forEach(remember);
    render(d);
    renderTiles();
    set("updated", "last updated " + new Date().toTimeString().slice(0, 8));
    down(null);
  }

  // Pushed by the gateway once a second; reconnects with a growing pause (1 s to 10 s) when the feed drops.
  var retry = 1000;
  function connect() {
    var ws = new WebSocket(wsURL("api/status/ws")), opened = false;
    ws.onopen = function () { opened = true; retry = 1000; };
    ws.onmessage = function (e) {
      try { receive(JSON.parse(e.data)); } catch (x) { down("unreadable update"); }
    };
    ws.onclose = function () {
      down(opened ? "connection lost" : "cannot connect");
      setTimeout(connect, retry);
      retry = Math.min(10000, retry * 2);
    };
  }

  filter.addEventListener("input", function () {
    try { sessionStorage.setItem("gatehouse.filter", filter.value); } catch (e) {}
    renderDevices();
  });
  filter.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { filter.value = ""; filter.dispatchEvent(new Event("input")); }
  });
  // For the browser check (Tests/ui/check_ui.py): render a report of its own, read the last one.
  window.gatehouse = { receive: receive, last: function () { return last; } };
  // The first report over plain HTTP, so the page is filled at once even where the feed cannot connect (and
  // a browser that waits for fetches, like headless Chromium's --virtual-time-budget, waits for this one).
  fetch("api/status", { cache: "no-store" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (d) { if (d && !last) receive(d); })
    .catch(function () {});
  connect();
})();
</script>
</body>
</html>
"""#
}
