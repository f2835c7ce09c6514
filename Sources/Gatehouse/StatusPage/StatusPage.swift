/// The status page served at `GET /`: one self-contained HTML document (inline CSS and JS, no external
/// assets) that polls `/api/status` every 2 s and redraws in place.
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
<thead><tr><th>Device</th><th>Kind</th><th>Session</th><th>Connected</th><th>Last seen</th><th>Remote</th><th class="n">Messages in</th><th class="n">Msg/s</th><th>Desired</th></tr></thead>
<tbody><tr class="empty"><td colspan="9">loading…</td></tr></tbody>
</table></div>
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

  function down(msg) {
    $("banner").hidden = !msg;
    document.body.classList.toggle("stale", !!msg);
    if (msg) set("banner-detail", "(" + msg + ")");
  }

  function poll() {
    var ctl = new AbortController(), t = setTimeout(function () { ctl.abort(); }, 5000);
    return fetch("api/status", { cache: "no-store", signal: ctl.signal })
      .then(function (r) {
        if (r.status !== 200) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (d) {
        last = d;
        render(d);
        set("updated", "last updated " + new Date().toTimeString().slice(0, 8));
        down(null);
      })
      .catch(function (e) { down(e && e.name === "AbortError" ? "timed out" : (e && e.message) || String(e)); })
      .then(function () { clearTimeout(t); });
  }
  function loop() { poll().then(function () { setTimeout(loop, 2000); }); }

  filter.addEventListener("input", function () {
    try { sessionStorage.setItem("gatehouse.filter", filter.value); } catch (e) {}
    renderDevices();
  });
  filter.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { filter.value = ""; filter.dispatchEvent(new Event("input")); }
  });
  loop();
})();
</script>
</body>
</html>
"""#
}
