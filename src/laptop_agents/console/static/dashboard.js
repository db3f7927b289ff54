// The dashboard page: one EventSource, state kept here, rendered at most once a frame.
// Every value from the session is put into the page with textContent (never as HTML).
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const LIMITS = { candles: 1000, equity: 1000, events: 300, decisions: 200, trades: 200, fills: 400, logs: 300 };
  const S = { status: {}, streams: {}, seq: {}, runs: [], controls: false, updates: 0 };
  window.__dashboard = S; // for the browser tests: what the page currently holds

  // ------------------------------------------------------------ formatting
  const $ = (id) => document.getElementById(id);
  const isNum = (x) => typeof x === "number" && isFinite(x);
  const fmt = (x, d = 2) => (isNum(x) ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : "–");
  const fmtQty = (x) => (isNum(x) ? String(Math.round(x * 1e6) / 1e6) : "–");
  const signed = (x, d = 2) => (isNum(x) ? (x > 0 ? "+" : "") + fmt(x, d) : "–");
  const cls = (x) => (isNum(x) ? (x > 0 ? "pos" : x < 0 ? "neg" : "") : "");
  const fmtTs = (ms) => (isNum(ms) ? new Date(ms).toISOString().replace("T", " ").slice(5, 19) : "");
  const fmtAge = (s) => (isNum(s) ? (s < 90 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min") : "–");
  const fmtDur = (s) => {
    if (!isNum(s)) return "–";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
  };
  function setText(id, text, className) {
    const el = $(id);
    if (!el) return;
    el.textContent = text;
    if (className !== undefined) el.className = el.className.split(" ").filter((c) => c === "big" || c === "sub").concat(className ? [className] : []).join(" ");
  }
  function details(obj, skip) {
    const parts = [];
    for (const [k, v] of Object.entries(obj)) {
      if (skip.has(k) || v === null || v === undefined || v === "") continue;
      const val = typeof v === "number" ? (Number.isInteger(v) ? String(v) : String(Math.round(v * 1e4) / 1e4))
        : typeof v === "object" ? JSON.stringify(v) : String(v);
      parts.push(`${k}=${val}`);
    }
    return parts.join("  ");
  }
  function row(tbody, cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c);
      else if (Array.isArray(c)) { td.textContent = c[0]; if (c[1]) td.className = c[1]; }
      else td.textContent = c === undefined || c === null ? "" : String(c);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  function fillTable(id, rows) {
    const tbody = $(id).tBodies[0];
    tbody.replaceChildren();
    for (const r of rows) row(tbody, r);
  }

  // ------------------------------------------------------------ state
  function apply(msg) {
    if (msg.reset) { S.streams = {}; S.seq = {}; S.controls = !!msg.controls; }
    if (msg.status) S.status = msg.status;
    if (msg.runs) S.runs = msg.runs;
    for (const [name, part] of Object.entries(msg.streams || {})) {
      const arr = S.streams[name] || (S.streams[name] = []);
      const last = S.seq[name] || 0;
      for (const it of part.items) if (it.seq > last) arr.push(it);
      const limit = LIMITS[name] || 500;
      if (arr.length > limit) arr.splice(0, arr.length - limit);
      S.seq[name] = Math.max(last, part.seq);
    }
    S.updates += 1;
    schedule();
  }
  const stream = (name) => S.streams[name] || [];

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  // ------------------------------------------------------------ rendering
  // The charts are the costly part (plotly redraws up to 1000 candles): at most
  // once a second, so a browser left open does not eat the laptop's CPU -- the
  // session shares it. Cards and tables follow every update.
  const CHART_EVERY_MS = 1000;
  let chartsAt = 0, chartsTimer = null;
  function charts() {
    const wait = chartsAt + CHART_EVERY_MS - Date.now();
    if (wait > 0) { if (!chartsTimer) chartsTimer = setTimeout(() => { chartsTimer = null; charts(); }, wait); return; }
    chartsAt = Date.now();
    renderCharts();
  }
  function render() {
    renderHeader();
    renderCards();
    charts();
    renderTables();
  }

  function renderHeader() {
    const st = S.status;
    const bits = [st.run_id, st.mode, st.symbol, st.interval].filter(Boolean);
    setText("run", bits.join(" · "));
    const state = st.status || "unknown";
    const kind = state === "running" ? (st.healthy ? "ok" : "warn") : state === "stopped" ? "bad" : "warn";
    setText("badge", state + (st.reason ? ` (${st.reason})` : "") + (state === "running" && !st.healthy ? " · unhealthy" : ""), `badge ${kind}`);
    $("badge").className = `badge ${kind}`;
    const live = state !== "stopped";
    $("controls").hidden = !S.controls;
    for (const b of document.querySelectorAll("#controls button")) b.disabled = !live;
    $("btn-pause").hidden = !!st.entries_paused || st.can_pause === false;
    $("btn-resume").hidden = !st.entries_paused || st.can_pause === false;
  }

  function renderCards() {
    const st = S.status;
    const pos = st.position || {};
    const candles = stream("candles");
    const price = isNum(st.last_price) ? st.last_price : candles.length ? candles[candles.length - 1].close : null;
    setText("c-price", fmt(price, 1));
    setText("c-price-sub", st.last_candle_ts ? "last candle " + fmtTs(st.last_candle_ts) : "");
    const qty = pos.qty || 0;
    setText("c-pos", qty ? `${pos.side || (qty > 0 ? "long" : "short")} ${fmtQty(Math.abs(qty))}` : "flat", qty > 0 ? "pos" : qty < 0 ? "neg" : "");
    setText("c-pos-sub", qty ? `@ ${fmt(pos.entry_price, 1)}  stop ${fmt(pos.stop, 1)}  target ${fmt(pos.target, 1)}` : "");
    const upnl = isNum(pos.unrealized) ? pos.unrealized : st.unrealized;
    setText("c-upnl", signed(upnl), cls(upnl));
    setText("c-upnl-sub", isNum(st.realized_pnl) ? `realised ${signed(st.realized_pnl)}` : "");
    setText("c-equity", fmt(st.equity));
    const eq = stream("equity");
    let dd = null;
    if (eq.length) { let peak = -Infinity; for (const p of eq) peak = Math.max(peak, p.equity); const lastEq = eq[eq.length - 1].equity; dd = peak > 0 ? (lastEq / peak - 1) * 100 : null; }
    const start = isNum(st.start_balance) ? st.start_balance : null;
    setText("c-equity-sub", [st.currency, start && isNum(st.equity) ? `${signed((st.equity / start - 1) * 100)} % since start` : "", isNum(dd) ? `dd ${fmt(dd)} %` : ""].filter(Boolean).join(" · "));
    const src = st.source || {};
    const age = st.market_data_age_s;
    const timeout = st.stale_timeout_s;
    setText("c-data", fmtAge(age), st.stale ? "neg" : isNum(age) && isNum(timeout) && age > timeout / 2 ? "warn" : "");
    const sock = src.ws_state || src.state || "";
    setText("c-data-sub", [sock && `socket ${sock}`, isNum(src.reconnects) ? `${src.reconnects} reconnects` : "", isNum(timeout) ? `stale after ${timeout} s` : ""].filter(Boolean).join(" · "));
    const err = st.errors || {};
    const share = isNum(err.total) && isNum(err.budget) && err.budget > 0 ? err.total / err.budget : 0;
    setText("c-errors", isNum(err.total) ? `${err.total} / ${err.budget}` : "–", share >= 1 ? "neg" : share >= 0.5 ? "warn" : "");
    const bar = $("c-errors-bar");
    bar.style.width = `${Math.min(100, share * 100)}%`;
    bar.style.background = share >= 1 ? "var(--bad)" : share >= 0.5 ? "var(--warn)" : "var(--ok)";
    const kinds = Object.entries(err).filter(([k]) => !["total", "budget", "consecutive_market_data", "max_consecutive_market_data"].includes(k));
    setText("c-errors-sub", kinds.map(([k, v]) => `${k} ${v}`).join(" · ") || (isNum(err.consecutive_market_data) ? `${err.consecutive_market_data} in a row` : ""));
    const br = st.breaker || {};
    setText("c-breaker", br.active ? "TRIPPED" : "ok", br.active ? "neg" : "pos");
    setText("c-breaker-sub", [br.active && br.reason, br.active && br.until_ts && `until ${fmtTs(br.until_ts)}`,
      st.entries_paused ? "entries paused" : "", st.entries_blocked ? `blocked: ${st.entries_blocked}` : "",
      isNum(br.consecutive_losses) && br.consecutive_losses ? `${br.consecutive_losses} losses in a row` : ""].filter(Boolean).join(" · "));
    const counts = st.counts || {};
    const lat = st.latency || {};
    setText("c-session", fmtDur(st.uptime_s));
    setText("c-session-sub", [isNum(counts.candles) ? `${counts.candles} candles` : "", isNum(lat.p99_ms) ? `p99 ${lat.p99_ms} ms` : "", isNum(st.trades_closed) ? `${st.trades_closed} trades` : ""].filter(Boolean).join(" · "));
  }

  const LAYOUT = {
    paper_bgcolor: "#181b1f", plot_bgcolor: "#181b1f", font: { color: "#d8dde3", size: 11 },
    margin: { l: 55, r: 15, t: 10, b: 30 }, showlegend: false, hovermode: "x unified",
    xaxis: { type: "date", gridcolor: "#2a2f36", rangeslider: { visible: false } },
    yaxis: { gridcolor: "#2a2f36", automargin: true },
  };
  const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function hline(y, color, dash, label) {
    return { shape: { type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { color, width: 1, dash } },
      annotation: { xref: "paper", x: 1, y, xanchor: "right", yanchor: "bottom", text: label, showarrow: false, font: { color, size: 10 } } };
  }

  function renderCharts() {
    if (!window.Plotly) return;
    const candles = stream("candles");
    const t = (ms) => new Date(ms);
    const traces = [{
      type: "candlestick", name: "price", x: candles.map((c) => t(c.ts)),
      open: candles.map((c) => c.open), high: candles.map((c) => c.high), low: candles.map((c) => c.low), close: candles.map((c) => c.close),
      increasing: { line: { color: "#3fb950" } }, decreasing: { line: { color: "#f85149" } },
    }];
    const t0 = candles.length ? candles[0].ts : 0;
    const fills = stream("fills").filter((f) => f.ts >= t0);
    for (const side of ["BUY", "SELL"]) {
      const fs = fills.filter((f) => f.side === side);
      traces.push({ type: "scatter", mode: "markers", name: side === "BUY" ? "buy" : "sell", x: fs.map((f) => t(f.ts)), y: fs.map((f) => f.price),
        text: fs.map((f) => `${side} ${fmtQty(f.qty)} @ ${fmt(f.price, 1)} (${f.reason || ""})`), hoverinfo: "text",
        marker: { symbol: side === "BUY" ? "triangle-up" : "triangle-down", size: 11, color: side === "BUY" ? "#3fb950" : "#f85149", line: { color: "#fff", width: 1 } } });
    }
    const trades = stream("trades").filter((tr) => tr.exit_ts >= t0);
    const tx = [], ty = [], tc = [];
    for (const tr of trades) { tx.push(t(tr.entry_ts), t(tr.exit_ts), null); ty.push(tr.entry_price, tr.exit_price, null); tc.push(tr.net_pnl); }
    if (tx.length) traces.push({ type: "scatter", mode: "lines", name: "trades", x: tx, y: ty, hoverinfo: "skip", line: { color: "#58a6ff", width: 1, dash: "dot" } });
    const enters = stream("decisions").filter((d) => d.action === "enter" && d.ts >= t0);
    for (const [key, color, label] of [["stop", "#f85149", "stop"], ["target", "#3fb950", "target"]]) {
      const ds = enters.filter((d) => isNum(d[key]));
      traces.push({ type: "scatter", mode: "markers", name: label, x: ds.map((d) => t(d.ts)), y: ds.map((d) => d[key]),
        text: ds.map((d) => `${label} ${fmt(d[key], 1)} (${d.reason || ""})`), hoverinfo: "text",
        marker: { symbol: "line-ew-open", size: 14, color, line: { width: 2, color } } });
    }
    const st = S.status, pos = st.position || {};
    const lines = [];
    if (pos.qty) {
      if (isNum(pos.entry_price)) lines.push(hline(pos.entry_price, "#58a6ff", "dash", "entry"));
      if (isNum(pos.stop)) lines.push(hline(pos.stop, "#f85149", "dash", "stop"));
      if (isNum(pos.target)) lines.push(hline(pos.target, "#3fb950", "dash", "target"));
    }
    for (const o of Array.isArray(st.working_orders) ? st.working_orders : []) {
      if (isNum(o.price)) lines.push(hline(o.price, "#d29922", "dot", `${o.side} ${o.type || ""}`));
    }
    Plotly.react("price-chart", traces, { ...LAYOUT, shapes: lines.map((l) => l.shape), annotations: lines.map((l) => l.annotation), uirevision: "price" }, CONFIG);

    const eq = stream("equity");
    let peak = -Infinity;
    const dd = eq.map((p) => { peak = Math.max(peak, p.equity); return peak > 0 ? (p.equity / peak - 1) * 100 : 0; });
    const ex = eq.map((p) => t(p.ts));
    Plotly.react("equity-chart", [
      { type: "scatter", mode: "lines", name: "equity", x: ex, y: eq.map((p) => p.equity), line: { color: "#58a6ff", width: 1.5 } },
      { type: "scatter", mode: "lines", name: "drawdown %", x: ex, y: dd, yaxis: "y2", fill: "tozeroy", line: { color: "#f85149", width: 1 } },
    ], { ...LAYOUT, xaxis: { ...LAYOUT.xaxis, anchor: "y2" }, yaxis: { ...LAYOUT.yaxis, domain: [0.35, 1], title: { text: "equity" } },
      yaxis2: { gridcolor: "#2a2f36", domain: [0, 0.28], title: { text: "dd %" } }, uirevision: "equity" }, CONFIG);
  }

  function renderTables() {
    const st = S.status, pos = st.position || {};
    const orders = [];
    if (pos.qty) orders.push(["position", pos.side || "", fmtQty(Math.abs(pos.qty)), fmt(pos.entry_price, 1), fmt(pos.stop, 1), fmt(pos.target, 1),
      [`uPnL ${signed(pos.unrealized)}`, cls(pos.unrealized)]]);
    for (const o of Array.isArray(st.working_orders) ? st.working_orders : []) {
      orders.push([`${o.type || "order"} ${o.client_id || ""}`, o.side, fmtQty(o.qty), fmt(o.price, 1), fmt(o.stop, 1), fmt(o.target, 1),
        o.expire_ts ? `expires ${fmtTs(o.expire_ts)}` : ""]);
    }
    if (!orders.length) orders.push(["flat, no working orders", "", "", "", "", "", ""]);
    fillTable("t-orders", orders);

    fillTable("t-trades", stream("trades").slice(-50).reverse().map((tr) => [
      fmtTs(tr.exit_ts || tr.ts), tr.side, fmtQty(tr.qty), `${fmt(tr.entry_price, 1)} → ${fmt(tr.exit_price, 1)}`,
      [signed(tr.net_pnl), cls(tr.net_pnl)], tr.exit_reason || ""]));

    const skipD = new Set(["seq", "ts", "kind", "action", "reason"]);
    fillTable("t-decisions", stream("decisions").slice(-50).reverse().map((d) => [fmtTs(d.ts), d.action || "", d.reason || "", details(d, skipD)]));

    const skipE = new Set(["seq", "ts", "kind"]);
    fillTable("t-events", stream("events").slice(-60).reverse().map((e) => [fmtTs(e.ts), e.kind || "", details(e, skipE)]));

    const pre = $("logs");
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.replaceChildren();
    for (const l of stream("logs").slice(-200)) {
      const span = document.createElement("span");
      span.className = `lvl-${l.level}`;
      span.textContent = `${(l.time || "").slice(11, 19)} ${(l.level || "").padEnd(7)} ${l.component || ""}: ${l.message || ""}\n`;
      pre.appendChild(span);
    }
    if (stick) pre.scrollTop = pre.scrollHeight;

    const tbody = $("t-runs").tBodies[0];
    tbody.replaceChildren();
    for (const r of S.runs) {
      let link = "";
      if (r.report) {
        link = document.createElement("a");
        link.href = `/runs/${encodeURIComponent(r.run_id)}/report.html`;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.textContent = "report.html";
      }
      row(tbody, [r.run_id, r.mode || "", (r.started_at || "").replace("T", " ").slice(0, 19), (r.ended_at || "").replace("T", " ").slice(0, 19),
        r.reason || "", r.exit_code ?? "", fmt(r.final_equity), link]);
    }
  }

  // ------------------------------------------------------------ controls
  const ACTIONS = {
    pause: { url: "/api/control/pause", body: {}, text: "Pause new entries? Open positions, stops and targets keep working." },
    resume: { url: "/api/control/resume", body: {}, text: "Resume new entries?" },
    stop: { url: "/api/control/stop", body: { flatten: false }, text: "Stop the session? Working orders are cancelled; the position is kept as it is." },
    "stop-flatten": { url: "/api/control/stop", body: { flatten: true }, text: "Stop the session and FLATTEN the position at market?" },
  };
  let chosen = null;
  function toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }
  async function send(action) {
    const a = ACTIONS[action];
    try {
      const r = await fetch(a.url, { method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-LA-CSRF": csrf }, body: JSON.stringify(a.body) });
      const j = await r.json().catch(() => ({}));
      toast(r.ok ? `${action}: requested` : `${action} failed: ${j.error || r.status}`);
    } catch (e) { toast(`${action} failed: ${e}`); }
  }
  for (const b of document.querySelectorAll("#controls button")) {
    b.addEventListener("click", () => {
      chosen = b.dataset.action;
      $("confirm-text").textContent = ACTIONS[chosen].text;
      $("confirm").showModal();
    });
  }
  $("confirm").addEventListener("close", () => {
    if ($("confirm").returnValue === "ok" && chosen) send(chosen);
    chosen = null;
  });

  // ------------------------------------------------------------ the stream
  function connect() {
    const es = new EventSource("/api/stream");
    es.addEventListener("update", (ev) => { try { apply(JSON.parse(ev.data)); } catch (e) { console.error(e); } });
    es.onopen = () => { setText("conn", "live"); $("conn").className = "conn live"; };
    es.onerror = () => { setText("conn", "reconnecting…"); $("conn").className = "conn down"; };
  }
  connect();
  window.addEventListener("load", schedule);
})();
