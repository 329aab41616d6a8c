// The dashboard's only script: polls /api/trading, /health and /api/history and draws the page.
// Plain DOM and SVG, no library and no build step. Text goes in through textContent only, never as HTML.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ORDER = ["main_bot", "trade_executor", "circuit_breaker", "codebase_search", "testing", "monitoring",
    "sidecar", "host"];
  const STATUSES = new Set(["healthy", "degraded", "critical", "starting"]);
  const body = document.body;
  const refreshMs = Math.max(1, Number(body.dataset.refreshSeconds) || 5) * 1000;
  const latencyBudget = Number(body.dataset.latencyBudgetMs) || null;
  const coverageTarget = Number(body.dataset.coverageTarget) || null;
  const cards = new Map();
  const openFolds = new Set();

  const byId = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const statusOf = (value) => (STATUSES.has(String(value).toLowerCase()) ? String(value).toLowerCase() : "unknown");
  const humanize = (key) => String(key).replace(/_/g, " ");
  const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  const isPlainObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

  function setBadge(node, status, text) {
    node.className = `badge ${status}`;
    node.dataset.status = status;
    node.textContent = text ?? status;
  }

  // A status the page does not know (a newer server) keeps its word but gets the neutral colour.
  function setStatusBadge(node, raw) {
    const word = raw === undefined || raw === null || raw === "" ? "unknown" : String(raw).toLowerCase();
    setBadge(node, statusOf(word), word);
  }

  // --- human formatting: money with 2 decimals, relative times with the ISO time on hover ------------

  const TIME_KEY = /(^|_)(at|time|timestamp|epoch|since|until)$/;
  const EPOCH_MIN = 1e9, EPOCH_MAX = 1e11; // 2001 .. 5138: a number in a time-named field in this range is a moment
  const LONG_ID = /^\d{16,}$|^0x[0-9a-fA-F]{24,}$/;

  function groupDigits(integer) {
    return integer.toLocaleString("en-US");
  }

  function formatNumber(value) {
    if (!Number.isFinite(value)) return "–";
    if (Number.isInteger(value)) return Math.abs(value) >= 10000 ? groupDigits(value) : String(value);
    const abs = Math.abs(value);
    if (abs >= 10000) return groupDigits(Math.round(value));
    if (abs >= 1) return value.toFixed(2);
    return String(Number(value.toPrecision(3)));
  }

  // A long token id or address as "…" and its last 6 characters (the full value is on hover).
  function shortId(text) {
    const value = String(text);
    return LONG_ID.test(value) ? `…${value.slice(-6)}` : value;
  }

  // Figures that hold a fraction of a limit under a "_percent" name (they mirror DAILY_LOSS_WARNING_PERCENT and
  // its kin, which the reference sets as fractions: 0.12 = 12 %): shown as the percentage they mean.
  const FRACTION_KEYS = new Set(["daily_loss_percent", "warning_percent", "critical_percent"]);

  function formatValue(value, key) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number" && FRACTION_KEYS.has(key)) return `${(value * 100).toFixed(1)} %`;
    if (typeof value === "number") {
      if (key && TIME_KEY.test(key) && value >= EPOCH_MIN && value < EPOCH_MAX) return relativeTime(epochIso(value));
      return formatNumber(value);
    }
    if (Array.isArray(value)) return value.length ? value.map((v) => formatValue(v)).join(", ") : "none";
    if (isPlainObject(value)) {
      const entries = Object.entries(value);
      return entries.length === 0 ? "none" : `${entries.length} item(s)`;
    }
    if (ISO_TIME.test(String(value))) return relativeTime(value);
    return shortId(value);
  }

  // The ISO time a figure stands for (for the hover title), or "".
  function isoOf(value, key) {
    if (typeof value === "number" && key && TIME_KEY.test(key) && value >= EPOCH_MIN && value < EPOCH_MAX) {
      return epochIso(value);
    }
    if (typeof value === "string" && ISO_TIME.test(value)) return value;
    if (typeof value === "string" && LONG_ID.test(value)) return value;
    return "";
  }

  const epochIso = (seconds) => new Date(seconds * 1000).toISOString();

  function relativeTime(iso) {
    if (!iso) return "–";
    const then = new Date(iso).getTime();
    if (Number.isNaN(then)) return String(iso);
    const seconds = Math.round((Date.now() - then) / 1000);
    const future = seconds < -1;
    const s = Math.abs(seconds);
    let text;
    if (s < 60) text = `${s} s`;
    else if (s < 3600) text = `${Math.floor(s / 60)} min`;
    else if (s < 86400) text = `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    else text = `${Math.floor(s / 86400)} d`;
    return future ? `in ${text}` : `${text} ago`;
  }

  // A <time> element: relative text, ISO on hover.
  function timeNode(iso) {
    const node = el("time", "", relativeTime(iso));
    if (iso) {
      node.dateTime = iso;
      node.title = new Date(iso).toISOString();
    }
    return node;
  }

  function usdc(value, signed = false) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "–";
    const text = Math.abs(value).toFixed(2);
    if (!signed) return value < 0 ? `−${text}` : text;
    return value > 0 ? `+${text}` : value < 0 ? `−${text}` : text;
  }

  const pct = (value) => (typeof value === "number" && Number.isFinite(value) ? `${value.toFixed(1)}\u00a0%` : "–");
  const price = (value) => (typeof value === "number" && Number.isFinite(value) ? value.toFixed(3) : "–");
  const size = (value) => (typeof value === "number" && Number.isFinite(value) ? formatNumber(value) : "–");
  const signClass = (value) => (value > 0 ? "pos" : value < 0 ? "neg" : "");

  function formatDuration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return m ? `${m}m ${s % 60}s` : `${s % 60}s`;
  }

  // One labelled row per figure; a nested set of figures is folded into <details> (closed by default),
  // and stays open across refreshes once the operator opened it.
  function fillFigures(dl, figures, depth = 0, path = "") {
    const rows = [];
    for (const [key, value] of Object.entries(figures || {})) {
      const dd = el("dd");
      if (isPlainObject(value) && Object.keys(value).length > 0 && depth < 3) {
        const id = `${path}/${key}`;
        const details = el("details", "fold");
        details.open = openFolds.has(id);
        details.addEventListener("toggle", () => (details.open ? openFolds.add(id) : openFolds.delete(id)));
        // the folded row names what is inside (e.g. "status · parameters · root")
        const names = Object.keys(value).map(humanize).join(" · ");
        details.append(el("summary", "", names.length > 60 ? `${names.slice(0, 59)}…` : names));
        const nested = el("dl", "figures nested");
        fillFigures(nested, value, depth + 1, id);
        details.append(nested);
        dd.append(details);
      } else if (isoOf(value, key) && (typeof value === "number" || ISO_TIME.test(String(value)))) {
        dd.append(timeNode(isoOf(value, key)));
      } else {
        dd.textContent = formatValue(value, key);
        const hover = isoOf(value, key);
        if (hover) dd.title = hover;
      }
      rows.push(el("dt", "", humanize(key)), dd);
    }
    dl.replaceChildren(...rows);
  }

  // The /health component: {"status", "message", "figures": {...}, "checked_at", "since"}; older servers put
  // the figures beside status and message, so anything else is shown as a figure too.
  function figuresOf(component) {
    if (component.figures && typeof component.figures === "object") return component.figures;
    const skip = new Set(["status", "message", "checked_at", "since", "error", "notes"]);
    return Object.fromEntries(Object.entries(component).filter(([key]) => !skip.has(key)));
  }

  function orderedNames(components) {
    const names = Object.keys(components);
    const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
    return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  }

  function cardFor(name) {
    let card = cards.get(name);
    if (card) return card;
    const root = el("article", "card");
    root.dataset.component = name;
    const head = el("header");
    const badge = el("span", "badge unknown", "unknown");
    head.append(el("h3", "", humanize(name)), badge);
    const message = el("p", "message");
    const error = el("p", "error");
    const figures = el("dl", "figures");
    const since = el("p", "since");
    root.append(head, message, error, figures, since);
    card = { root, badge, message, error, figures, since };
    cards.set(name, card);
    return card;
  }

  function renderComponents(components) {
    const container = byId("components");
    const names = orderedNames(components);
    for (const [name, card] of cards) {
      if (!(name in components)) {
        card.root.remove();
        cards.delete(name);
      }
    }
    const problems = [];
    for (const name of names) {
      const component = components[name] || {};
      const status = statusOf(component.status);
      const card = cardFor(name);
      card.root.className = `card ${status}`;
      setStatusBadge(card.badge, component.status);
      card.message.textContent = component.message || "";
      card.error.textContent = component.error || "";
      card.error.hidden = !component.error;
      fillFigures(card.figures, figuresOf(component), 0, name);
      const parts = [];
      if (component.since) parts.push(`${card.badge.textContent} since `, timeNode(component.since));
      if (component.checked_at) parts.push(parts.length ? " · checked " : "checked ", timeNode(component.checked_at));
      card.since.replaceChildren(...parts);
      container.append(card.root); // appending an existing node moves it: keeps the order without rebuilding
      if (status !== "healthy" && status !== "starting") {
        problems.push({ name, status, message: component.message || component.error || "" });
      }
    }
    renderProblems(problems);
  }

  function renderProblems(problems) {
    const section = byId("problems");
    const items = problems.map(({ name, status, message }) => {
      const item = el("li", status);
      item.append(el("span", `badge ${status}`, status), el("strong", "", ` ${humanize(name)}`), ` ${message}`);
      return item;
    });
    byId("problem-list").replaceChildren(...items);
    section.hidden = items.length === 0;
  }

  function renderBreaker(breaker) {
    const state = breaker && breaker.trading_state;
    const status = state === "ACTIVE" ? "healthy" : state === "HALTED" ? "critical" : "unknown";
    setBadge(byId("breaker-badge"), status, state || "unknown");
    fillFigures(byId("breaker"), breaker || {}, 0, "breaker");
  }

  function renderGate(gate, isolation) {
    let status = "unknown", text = "unknown";
    if (gate && typeof gate.heavy_work_allowed === "boolean") {
      status = gate.heavy_work_allowed ? "healthy" : "degraded";
      text = gate.heavy_work_allowed ? "open" : "deferred";
    }
    setBadge(byId("gate-badge"), status, text);
    // issue 10: which isolation keeps heavy work from hurting trading (systemd unit / own cgroup / SCHED_IDLE / nice only)
    const shown = { ...(gate || {}) };
    if (isolation && isolation.isolation) shown.isolation = isolation.isolation;
    fillFigures(byId("gate"), shown, 0, "gate");
  }

  function renderHealth(report) {
    const overall = statusOf(report.status);
    setStatusBadge(byId("overall"), report.status);
    document.title = `${overall} · polymarket-copy-bot monitoring`;
    byId("environment").textContent = report.environment || "–";
    byId("uptime").textContent = formatDuration(report.uptime_seconds);
    renderComponents(report.components || {});
    renderBreaker(report.circuit_breaker);
    renderGate(report.gate, report.isolation);
  }

  // --- charts: a small SVG line chart per figure -------------------------------------------------

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cleanPoints(points, scale) {
    if (!Array.isArray(points)) return [];
    return points
      .filter((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]))
      .map(([t, v]) => [t, v * scale]);
  }

  // The smallest "round" number (1, 2, 2.5, 5 × 10^k) at or above `value`, so the axis reads well.
  function niceCeil(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function drawChart(target, series, options) {
    const W = 360, H = 160, left = 42, right = 8, top = 24, bottom = 22;
    const drawn = series.map((s) => ({ ...s, points: cleanPoints(s.points, s.scale ?? 1) }));
    const all = drawn.flatMap((s) => s.points);
    const nodes = [];
    if (all.length === 0) {
      nodes.push(svg("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, "no data yet"));
      target.replaceChildren(...nodes);
      return;
    }
    const times = all.map((p) => p[0]);
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const dataMax = Math.max(...all.map((p) => p[1]));
    // a reference line (budget, target) far above the data would flatten it: it joins the scale only when near
    const reference = options.reference && options.reference.value <= dataMax * 2 ? options.reference : null;
    const offScale = options.reference && !reference ? options.reference : null;
    const highest = Math.max(dataMax, reference ? reference.value : 0);
    // a fixed ceiling (coverage: 100 %) unless a value goes past it
    const vmax = options.max !== undefined && highest <= options.max ? options.max : niceCeil(highest * 1.05);
    const x = (t) => left + (t1 === t0 ? (W - left - right) / 2 : ((t - t0) / (t1 - t0)) * (W - left - right));
    const y = (v) => top + (1 - Math.max(0, v) / vmax) * (H - top - bottom);

    nodes.push(svg("line", { x1: left, y1: top, x2: left, y2: H - bottom, class: "axis" }));
    nodes.push(svg("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "axis" }));
    nodes.push(svg("text", { x: left - 4, y: top + 3, class: "tick", "text-anchor": "end" }, formatNumber(vmax)));
    nodes.push(svg("text", { x: left - 4, y: H - bottom, class: "tick", "text-anchor": "end" }, "0"));
    const when = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    nodes.push(svg("text", { x: left, y: H - 6, class: "tick" }, when(t0)));
    nodes.push(svg("text", { x: W - right, y: H - 6, class: "tick", "text-anchor": "end" }, when(t1)));
    if (reference) {
      const ry = y(reference.value);
      nodes.push(svg("line", { x1: left, y1: ry, x2: W - right, y2: ry, class: "reference" }));
      nodes.push(svg("text", { x: W - right, y: ry - 3, class: "tick reference-label", "text-anchor": "end" },
        `${reference.label} ${formatNumber(reference.value)}`));
    }
    if (offScale) {
      nodes.push(svg("text", { x: W - right, y: top + 3, class: "tick reference-label", "text-anchor": "end" },
        `${offScale.label} ${formatNumber(offScale.value)} (above)`));
    }
    let legendX = left + 4;
    for (const s of drawn) {
      if (s.points.length === 0) continue;
      const path = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      const shape = s.points.length === 1
        ? svg("circle", { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 2.5, class: `dot ${s.cls}` })
        : svg("polyline", { points: path, class: `line ${s.cls}` });
      shape.dataset.series = s.name;
      nodes.push(shape);
      const last = s.points[s.points.length - 1][1];
      nodes.push(svg("text", { x: legendX, y: 12, class: `legend ${s.cls}` }, `${s.name} ${formatNumber(last)}`));
      legendX += 110;
    }
    target.replaceChildren(...nodes);
  }

  function renderHistory(data) {
    const h = data || {};
    drawChart(byId("chart-latency"), [
      { name: "p50", points: h.trade_latency_p50_ms, cls: "s1" },
      { name: "p99", points: h.trade_latency_p99_ms, cls: "s2" },
    ], { reference: latencyBudget ? { value: latencyBudget, label: "budget" } : null });
    drawChart(byId("chart-cpu"), [{ name: "cpu %", points: h.sidecar_cpu_percent, cls: "s1" }], {});
    drawChart(byId("chart-rss"), [{ name: "rss MB", points: h.sidecar_rss_mb, cls: "s1" }], {});
    drawChart(byId("chart-coverage"), [{ name: "coverage %", points: h.coverage, cls: "s1", scale: 100 }], {
      reference: coverageTarget ? { value: coverageTarget * 100, label: "target" } : null,
      max: 100,
    });
  }

  // --- the trading section (/api/trading) ------------------------------------------------------------

  function cell(text, cls, label, title) {
    const td = el("td", cls || "", text);
    if (label) td.dataset.label = label;
    if (title) td.title = title;
    return td;
  }

  function emptyRow(tbody, columns, text) {
    const row = el("tr", "empty");
    const td = el("td", "", text);
    td.colSpan = columns;
    row.append(td);
    tbody.replaceChildren(row);
  }

  // A bar of `used` percent (0..100+) inside a track; amber from 50 %, red from 80 %.
  function meter(usedPercent, width = 300, height = 18) {
    const used = Math.max(0, Number(usedPercent) || 0);
    const level = used >= 80 ? "critical" : used >= 50 ? "degraded" : "healthy";
    const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "meter" });
    node.append(svg("rect", { x: 0, y: 0, width, height, rx: 3, class: "track" }));
    node.append(svg("rect", { x: 0, y: 0, width: (Math.min(used, 100) / 100) * width, height, rx: 3,
      class: `fill ${level}` }));
    return node;
  }

  function renderToday(view) {
    const pnl = view.pnl || {};
    const exposure = view.exposure || {};
    byId("t-day").textContent = pnl.day ? `· ${pnl.day}` : "";
    const mode = view.trading_state ? `${view.trading_mode || "?"} · ${view.trading_state}` : view.trading_mode || "no bot";
    setBadge(byId("t-mode"), view.trading_state === "ACTIVE" ? "healthy" : view.trading_state ? "critical" : "unknown",
      mode);
    byId("t-equity").textContent = pnl.equity === null || pnl.equity === undefined ? "–" : `${usdc(pnl.equity)} USDC`;
    byId("t-cash").textContent = pnl.cash === null || pnl.cash === undefined ? "" : `cash ${usdc(pnl.cash)}`;
    const total = byId("t-pnl");
    total.textContent = `${usdc(pnl.total_pnl, true)} USDC`;
    total.className = `kpi-value ${signClass(pnl.total_pnl)}`;
    byId("t-pnl-split").textContent =
      `realized ${usdc(pnl.realized_pnl, true)} · unrealized ${usdc(pnl.unrealized_pnl, true)} · fees ${usdc(pnl.fees)}`;
    byId("t-exposure").textContent = `${usdc(exposure.total)} USDC`;
    byId("t-exposure-sub").textContent =
      `${exposure.open_positions ?? 0} position(s) · ${pct(exposure.limit_used_percent)} of ${usdc(exposure.limit)}`;
    const loss = byId("t-loss-text");
    loss.textContent =
      `lost ${usdc(pnl.daily_loss)} of ${usdc(pnl.max_daily_loss)} USDC (${pct(pnl.loss_limit_used_percent)} used)`;
    loss.title = pnl.daily_loss_source === "breaker"
      ? "the circuit breaker's count: equity now against equity at the start of the trading day"
      : "today's realized and unrealized P&L";
    const gauge = meter(pnl.loss_limit_used_percent);
    const target = byId("t-gauge");
    target.replaceChildren(...gauge.childNodes);
    target.dataset.used = String(pnl.loss_limit_used_percent ?? 0);
  }

  function renderPositions(rows) {
    const tbody = byId("positions");
    byId("t-positions-count").textContent = `(${rows.length})`;
    if (rows.length === 0) return emptyRow(tbody, 7, "No open positions.");
    tbody.replaceChildren(...rows.map((p) => {
      const row = el("tr");
      const market = cell(p.market_title, "market", "Market", `token ${p.token_id}`);
      const exposure = cell("", "exposure", "Exposure / limit");
      exposure.append(meter(p.exposure_limit_used_percent, 100, 8),
        el("span", "", ` ${usdc(p.exposure)} / ${usdc(p.exposure_limit)} (${pct(p.exposure_limit_used_percent)})`));
      row.append(market, cell(p.outcome || "–", "", "Outcome"), cell(size(p.size), "num", "Size"),
        cell(price(p.avg_price), "num", "Avg price"), cell(price(p.mark), "num", "Mark"),
        cell(usdc(p.unrealized_pnl, true), `num ${signClass(p.unrealized_pnl)}`, "Unrealized P&L"), exposure);
      return row;
    }));
  }

  function renderTrades(rows) {
    const tbody = byId("trades");
    if (rows.length === 0) return emptyRow(tbody, 9, "No followed trades yet.");
    tbody.replaceChildren(...rows.map((t) => {
      const row = el("tr", `decision-${t.decision}`);
      const when = cell("", "", "When");
      when.append(timeNode(t.seen_at));
      const market = cell(t.outcome ? `${t.market_title} · ${t.outcome}` : t.market_title, "market", "Market");
      const decision = cell("", "", "Decision");
      decision.append(el("span", `pill ${t.decision}`, t.decision));
      // an order that failed has no deny reason in the ledger: say what happened instead of a blank
      const why = t.deny_reasons && t.deny_reasons.length ? t.deny_reasons.join(", ").replace(/_/g, " ")
        : t.decision === "error" ? "order failed" : t.decision === "pending" ? "deciding" : "–";
      const latency = typeof t.latency_ms === "number" ? `${formatNumber(t.latency_ms)} ms` : "–";
      row.append(when, cell(t.followed_wallet, "mono", "Wallet"), market, cell(t.side, `side ${t.side}`, "Side"),
        cell(size(t.size), "num", "Size"), cell(price(t.price), "num", "Price"), decision,
        cell(why, "reason", "Why denied"), cell(latency, "num", "Latency"));
      return row;
    }));
  }

  function renderWallets(rows) {
    const tbody = byId("wallets");
    if (rows.length === 0) return emptyRow(tbody, 3, "No followed trades yet.");
    tbody.replaceChildren(...rows.map((w) => {
      const row = el("tr");
      row.append(cell(w.wallet, "mono", "Wallet"), cell(String(w.copied), "num", "Copied"),
        cell(String(w.denied), "num", "Denied"));
      return row;
    }));
  }

  function drawDenials(target, rows) {
    const W = 360, rowH = 22, left = 150, right = 40;
    if (rows.length === 0) {
      target.setAttribute("viewBox", `0 0 ${W} 60`);
      target.replaceChildren(svg("text", { x: W / 2, y: 34, class: "empty", "text-anchor": "middle" },
        "no denials today"));
      return;
    }
    const shown = rows.slice(0, 8);
    const H = shown.length * rowH + 8;
    target.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const top = Math.max(...shown.map((r) => r.count));
    const nodes = [];
    shown.forEach((r, i) => {
      const y = 4 + i * rowH;
      const label = String(r.reason).replace(/_/g, " ");
      nodes.push(svg("text", { x: left - 6, y: y + 14, class: "tick bar-label", "text-anchor": "end" },
        label.length > 24 ? `${label.slice(0, 23)}…` : label));
      const width = Math.max(2, (r.count / top) * (W - left - right));
      nodes.push(svg("rect", { x: left, y: y + 3, width, height: rowH - 8, rx: 2, class: "bar" }));
      nodes.push(svg("text", { x: left + width + 4, y: y + 14, class: "tick" }, String(r.count)));
    });
    target.replaceChildren(...nodes);
  }

  // The day's equity: scaled between its own low and high (it rarely moves far from the start).
  function drawEquity(target, points, startEquity) {
    const W = 360, H = 160, left = 52, right = 8, top = 14, bottom = 22;
    const data = (points || [])
      .map(([iso, v]) => [new Date(iso).getTime() / 1000, v])
      .filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v));
    if (data.length === 0) {
      target.replaceChildren(svg("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" },
        "no equity recorded today yet"));
      return;
    }
    const values = data.map((p) => p[1]).concat(Number.isFinite(startEquity) ? [startEquity] : []);
    let lo = Math.min(...values), hi = Math.max(...values);
    if (hi - lo < 0.01) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.1;
    lo -= pad; hi += pad;
    const t0 = data[0][0], t1 = data[data.length - 1][0];
    const x = (t) => left + (t1 === t0 ? (W - left - right) / 2 : ((t - t0) / (t1 - t0)) * (W - left - right));
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
    const when = (t) => new Date(t * 1000).toLocaleTimeString([], t1 - t0 < 600
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
    const nodes = [
      svg("line", { x1: left, y1: top, x2: left, y2: H - bottom, class: "axis" }),
      svg("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "axis" }),
      svg("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, hi.toFixed(2)),
      svg("text", { x: left - 4, y: H - bottom, class: "tick", "text-anchor": "end" }, lo.toFixed(2)),
      svg("text", { x: left, y: H - 6, class: "tick" }, when(t0)),
      svg("text", { x: W - right, y: H - 6, class: "tick", "text-anchor": "end" }, when(t1)),
    ];
    if (Number.isFinite(startEquity)) {
      const sy = y(startEquity);
      nodes.push(svg("line", { x1: left, y1: sy, x2: W - right, y2: sy, class: "baseline" }));
      nodes.push(svg("text", { x: W - right, y: sy - 3, class: "tick", "text-anchor": "end" },
        `day start ${startEquity.toFixed(2)}`));
    }
    if (data.length === 1) {
      nodes.push(svg("circle", { cx: x(data[0][0]), cy: y(data[0][1]), r: 2.5, class: "dot s1" }));
    } else {
      const path = data.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      nodes.push(svg("polyline", { points: path, class: "line s1" }));
    }
    target.replaceChildren(...nodes);
  }

  function renderTrading(view) {
    const note = byId("trading-note");
    const problems = [view.message, view.snapshot_problem].filter(Boolean);
    note.textContent = problems.join(" · ");
    note.hidden = problems.length === 0;
    renderToday(view);
    drawEquity(byId("chart-equity"), view.equity_curve, (view.pnl || {}).day_start_equity);
    renderPositions(view.positions || []);
    renderTrades(view.recent_trades || []);
    renderWallets(view.followed_wallets || []);
    drawDenials(byId("chart-denials"), view.deny_reasons || []);
  }

  function markTradingUnavailable(error) {
    const note = byId("trading-note");
    note.textContent = `trading view unavailable (${error.message}); retrying`;
    note.hidden = false;
  }

  // --- polling -------------------------------------------------------------------------------------

  async function fetchJson(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (response.status === 401) {
      // beyond loopback the page needs the token: the sign-in form sets the cookie and comes back
      window.location.assign("/login");
      throw new Error("sign-in needed");
    }
    // /health answers 503 with the full report when the overall status is critical
    if (!response.ok && !(url === "/health" && response.status === 503)) {
      throw new Error(`${url} answered HTTP ${response.status}`);
    }
    return response.json();
  }

  function markUpdated(report) {
    const now = new Date();
    const stamp = byId("last-updated");
    stamp.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    stamp.dateTime = now.toISOString();
    stamp.title = report.generated_at ? `report generated at ${report.generated_at}` : "";
    const connection = byId("connection");
    connection.textContent = "";
    connection.className = "connection";
  }

  function markOffline(error) {
    const connection = byId("connection");
    connection.textContent = `· sidecar unreachable (${error.message}); retrying`;
    connection.className = "connection offline";
    setBadge(byId("overall"), "unknown", "unreachable");
  }

  async function refresh() {
    try {
      const trading = fetchJson("/api/trading").then(renderTrading).catch(markTradingUnavailable);
      const [report, historyData] = await Promise.all([fetchJson("/health"), fetchJson("/api/history")]);
      renderHealth(report);
      renderHistory(historyData);
      await trading;
      markUpdated(report);
    } catch (error) {
      markOffline(error);
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  // --- the MCP circuit breaker's reset (issue 12) ----------------------------------------------------
  // Only the MCP breaker (the sidecar's heavy work): the trading breaker is reset by `python main.py
  // --reset-circuit-breaker` alone. The token goes in the Authorization header, never in a cookie or the URL.

  async function resetMcpBreaker(event) {
    event.preventDefault();
    const tokenField = byId("mcp-reset-token");
    const result = byId("mcp-reset-result");
    const button = byId("mcp-reset-button");
    button.disabled = true;
    result.textContent = "resetting the MCP circuit breaker…";
    try {
      const response = await fetch("/reset-mcp-circuit-breaker", {
        method: "POST",
        cache: "no-store",
        headers: { Authorization: `Bearer ${tokenField.value.trim()}`, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: "reset from the dashboard page" }),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        const state = answer.mcp_circuit_breaker && answer.mcp_circuit_breaker.state;
        result.textContent = `MCP circuit breaker reset (now ${state || "unknown"}); the trading breaker is unchanged`;
      } else {
        result.textContent = `MCP circuit breaker not reset: HTTP ${response.status} ${answer.error || ""}`;
      }
    } catch (error) {
      result.textContent = `MCP circuit breaker not reset: ${error.message}`;
    } finally {
      tokenField.value = "";
      button.disabled = false;
    }
  }

  byId("mcp-reset").addEventListener("submit", resetMcpBreaker);
  refresh();
})();
