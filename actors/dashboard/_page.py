"""The dashboard's one page: HTML, its inline style and script, and the CSP that pins them.

Nothing is loaded from anywhere but the dashboard itself: the style and the
script are inline and allowed by their SHA-256 hashes, the chart is inline SVG
drawn by the script, and the page's state arrives on ``/events`` (server-sent
events). Every value is put in the page with ``textContent``, never as HTML.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSP", "PAGE"]

_STYLE = """
:root{color-scheme:dark;--bg:#111418;--card:#1b2027;--line:#2b323c;--fg:#e6e9ee;--dim:#8d97a5;
--pos:#3fb950;--neg:#f85149;--warn:#d29922;--info:#58a6ff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.4 system-ui,sans-serif}
header{display:flex;gap:12px;align-items:center;padding:10px 16px;
border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0 8px 0 0}
.badge{padding:2px 8px;border-radius:10px;background:var(--line);font-weight:600}
.badge.ACTIVE{background:#1f4d2c}.badge.REDUCING{background:#5a4512}.badge.HALTED{background:#6e1b1b}
.dim{color:var(--dim)}.pos{color:var(--pos)}.neg{color:var(--neg)}
.spacer{flex:1}
main{padding:12px 16px;display:grid;gap:12px;grid-template-columns:repeat(12,1fr)}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;
grid-column:span 12;min-width:0}
section.half{grid-column:span 6}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--dim);margin:0 0 8px}
.figures{display:flex;flex-wrap:wrap;gap:18px}
.figure .label{color:var(--dim);font-size:12px}.figure .v{font-size:20px;font-weight:600}
table{border-collapse:collapse;width:100%}
th,td{text-align:right;padding:3px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{color:var(--dim);font-weight:500}
ul{margin:0;padding-left:18px}
li.critical{color:var(--neg)}li.warning{color:var(--warn)}li.info{color:var(--info)}
svg{width:100%;height:220px;display:block}
svg .curve{fill:none;stroke:var(--info);stroke-width:2}
svg text{fill:var(--dim);font-size:11px}
svg .grid{stroke:var(--line)}
"""

_SCRIPT = r"""
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const suffix = token ? "?token=" + encodeURIComponent(token) : "";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  function rupees(p) {
    if (p === null || p === undefined) return "\u2013";
    const a = Math.abs(p);
    return (p < 0 ? "-" : "") + "\u20b9" + Math.floor(a / 100).toLocaleString("en-US") +
      "." + String(a % 100).padStart(2, "0");
  }
  function put(id, value, sign) {
    const el = $(id);
    el.textContent = value;
    if (sign !== undefined) el.className = "v " + (sign < 0 ? "neg" : sign > 0 ? "pos" : "");
  }
  function table(id, items, cells, key) {
    const rows = items.map((item) => {
      const tr = document.createElement("tr");
      if (key) tr.dataset.key = key(item);
      for (const c of cells(item)) {
        const td = document.createElement("td");
        td.textContent = c;
        tr.appendChild(td);
      }
      return tr;
    });
    $(id).replaceChildren(...rows);
  }
  function time(ms) {
    return new Date(ms).toLocaleTimeString("en-GB", {timeZone: "Asia/Kolkata"});
  }
  function node(name, attrs, text) {
    const el = document.createElementNS(SVG, name);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function chart(points) {
    const svg = $("equity"), W = 800, H = 220, L = 90, R = 10, T = 10, B = 24;
    const parts = [];
    if (points.length) {
      let lo = Math.min(...points.map((p) => p[1])), hi = Math.max(...points.map((p) => p[1]));
      if (hi - lo < 100) { lo -= 100; hi += 100; }
      const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
      const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
      const y = (v) => T + (H - T - B) * (hi - v) / (hi - lo);
      parts.push(node("line", {class: "grid", x1: L, x2: W - R, y1: y(hi), y2: y(hi)}));
      parts.push(node("line", {class: "grid", x1: L, x2: W - R, y1: y(lo), y2: y(lo)}));
      parts.push(node("text", {x: 4, y: y(hi) + 4}, rupees(hi)));
      parts.push(node("text", {x: 4, y: y(lo) + 4}, rupees(lo)));
      parts.push(node("text", {x: L, y: H - 6}, time(t0)));
      parts.push(node("text", {x: W - R, y: H - 6, "text-anchor": "end"}, time(t1)));
      parts.push(node("polyline", {class: "curve", points: points.map(
        (p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ")}));
    }
    svg.replaceChildren(...parts);
  }
  function render(s) {
    const p = s.portfolio, o = s.orders, st = o.stats;
    put("value", rupees(p.value));
    put("cash", rupees(p.cash));
    put("reserved", rupees(p.reserved + p.margin));
    put("realised", rupees(p.realised), p.realised);
    put("unrealised", rupees(p.unrealised), p.unrealised);
    put("charges", rupees(p.charges));
    put("net", rupees(p.net), p.net);
    put("fills", String(p.fills_applied));
    put("open-positions", String(p.open_positions));
    const badge = $("state");
    badge.textContent = o.state + (o.draining ? " (draining)" : "");
    badge.className = "badge " + o.state;
    $("reason").textContent = o.reason;
    $("mode").textContent = s.mode;
    $("now").textContent = s.now.slice(0, 19).replace("T", " ") + " IST";
    table("positions", s.positions, (r) => [r.strategy, r.symbol, r.quantity, rupees(r.average),
      rupees(r.last), r.age_s === null ? "\u2013" : r.age_s.toFixed(1) + " s",
      rupees(r.unrealised), rupees(r.realised), rupees(r.charges)],
      (r) => r.strategy + ":" + r.symbol);
    $("in-flight").textContent = String(o.in_flight);
    $("order-stats").textContent = "orders " + st.orders + " \u00b7 fills " + st.fills +
      " \u00b7 sagas started " + st.sagas_started + ", completed " + st.sagas_completed +
      ", compensated " + st.sagas_compensated + ", refused " + st.sagas_refused;
    const orders = [];
    for (const g of o.sagas) for (const od of g.orders) orders.push([g, od]);
    table("sagas", orders, ([g, od]) => [g.saga_id + " " + g.kind, od.tradingsymbol,
      od.side, od.quantity, od.filled, od.status, g.step, g.seconds_left.toFixed(1) + " s"]);
    const rl = s.rate_limits;
    table("limits", rl.windows, (w) => [w.endpoint, w.span_s + " s", w.used + " / " + w.limit,
      Math.round(100 * w.used / w.limit) + "%", rl.queued[w.endpoint] || 0,
      rl.throttled[w.endpoint] || 0]);
    $("orders-today").textContent = rl.orders_today + " / " + rl.orders_per_day;
    const alerts = s.alerts.map((a) => {
      const li = document.createElement("li");
      li.className = a.severity;
      li.textContent = a.severity.toUpperCase() + " \u00b7 " + a.source + ": " + a.message;
      return li;
    });
    if (!alerts.length) {
      const li = document.createElement("li");
      li.className = "dim";
      li.textContent = "none";
      alerts.push(li);
    }
    $("alerts").replaceChildren(...alerts);
    chart(s.equity.points);
    $("equity-count").textContent = s.equity.samples + " samples";
    $("updated").textContent = "updated " + time(Date.now());
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }
  const source = new EventSource("/events" + suffix);
  source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pos"; };
  source.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "neg"; };
  source.onmessage = (e) => render(JSON.parse(e.data));
})();
"""

_BODY = """<header><h1>kitesaga</h1><span id="mode" class="badge">-</span>
<span id="state" class="badge">-</span><span id="reason" class="dim"></span>
<span class="spacer"></span><span id="now"></span><span id="updated" class="dim"></span>
<span id="conn" class="neg">connecting</span></header>
<main>
<section><h2>Portfolio</h2><div class="figures">
<div class="figure"><div class="label">value</div><div class="v" id="value">-</div></div>
<div class="figure"><div class="label">cash</div><div class="v" id="cash">-</div></div>
<div class="figure"><div class="label">reserved + margin</div><div class="v" id="reserved">-</div>
</div>
<div class="figure"><div class="label">realised</div><div class="v" id="realised">-</div></div>
<div class="figure"><div class="label">unrealised</div><div class="v" id="unrealised">-</div>
</div>
<div class="figure"><div class="label">charges</div><div class="v" id="charges">-</div></div>
<div class="figure"><div class="label">net P&amp;L</div><div class="v" id="net">-</div></div>
<div class="figure"><div class="label">fills</div><div class="v" id="fills">-</div></div>
<div class="figure"><div class="label">open positions</div>
<div class="v" id="open-positions">-</div></div></div></section>
<section><h2>Equity <span id="equity-count" class="dim"></span></h2>
<svg id="equity" viewBox="0 0 800 220" preserveAspectRatio="none" role="img"
aria-label="portfolio value over time"></svg></section>
<section><h2>Alerts</h2><ul id="alerts"></ul></section>
<section><h2>Positions</h2><table><thead><tr><th>strategy</th><th>symbol</th><th>qty</th>
<th>avg</th><th>last</th><th>price age</th><th>P&amp;L at last</th><th>realised</th><th>charges</th>
</tr></thead><tbody id="positions"></tbody></table></section>
<section class="half"><h2>Orders and sagas: <span id="in-flight">-</span> in flight</h2>
<div id="order-stats" class="dim"></div><table><thead><tr><th>saga</th><th>symbol</th>
<th>side</th><th>qty</th><th>filled</th><th>status</th><th>step</th><th>left</th></tr></thead>
<tbody id="sagas"></tbody></table></section>
<section class="half"><h2>Rate limits (orders today <span id="orders-today">-</span>)</h2>
<table><thead><tr><th>class</th><th>window</th><th>used</th><th>%</th><th>queued</th>
<th>throttled</th></tr></thead><tbody id="limits"></tbody></table></section>
</main>"""

PAGE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<title>kitesaga dashboard</title><link rel=\"icon\" href=\"data:,\">"
        f"<style>{_STYLE}</style></head><body>{_BODY}<script>{_SCRIPT}</script></body></html>")
"""The page, UTF-8 HTML."""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; "
       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
"""The Content-Security-Policy of the page: only its own inline style and script, and
connections back to the dashboard; any other load is refused by the browser."""
