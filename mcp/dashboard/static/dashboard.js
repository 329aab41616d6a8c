// The dashboard's only script: polls /health and /api/history and draws the page.
// Plain DOM and SVG, no library and no build step. Text goes in through textContent only, never as HTML.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ORDER = ["main_bot", "trade_executor", "circuit_breaker", "codebase_search", "testing", "monitoring",
    "sidecar", "host"];
  const STATUSES = new Set(["healthy", "starting", "degraded", "critical"]);
  const body = document.body;
  const refreshMs = Math.max(1, Number(body.dataset.refreshSeconds) || 5) * 1000;
  const latencyBudget = Number(body.dataset.latencyBudgetMs) || null;
  const coverageTarget = Number(body.dataset.coverageTarget) || null;
  const cards = new Map();

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

  function formatValue(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return "–";
      if (Number.isInteger(value)) return String(value);
      return Math.abs(value) >= 100 ? value.toFixed(1) : String(Number(value.toPrecision(3)));
    }
    if (Array.isArray(value)) return value.length ? value.map(formatValue).join(", ") : "none";
    if (isPlainObject(value)) {
      const entries = Object.entries(value);
      if (entries.length === 0) return "none";
      if (entries.every(([, v]) => !isPlainObject(v))) {
        return entries.map(([k, v]) => `${humanize(k)} ${formatValue(v)}`).join(" · ");
      }
      return JSON.stringify(value);
    }
    if (ISO_TIME.test(String(value))) return formatTime(value);
    return String(value);
  }

  function formatTime(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
  }

  function formatDuration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return m ? `${m}m ${s % 60}s` : `${s % 60}s`;
  }

  // One row per figure (at most two levels of nesting).
  function fillFigures(dl, figures, depth = 0) {
    const rows = [];
    for (const [key, value] of Object.entries(figures || {})) {
      const dd = el("dd");
      // a set of sets (e.g. each check's interval and runs) becomes a nested list; a flat set fits on one line
      if (isPlainObject(value) && Object.values(value).some(isPlainObject) && depth < 2) {
        const nested = el("dl", "figures nested");
        fillFigures(nested, value, depth + 1);
        dd.className = "block";
        dd.append(nested);
      } else {
        dd.textContent = formatValue(value);
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
      setBadge(card.badge, status);
      card.message.textContent = component.message || "";
      card.error.textContent = component.error || "";
      card.error.hidden = !component.error;
      fillFigures(card.figures, figuresOf(component));
      const since = component.since ? `${status} since ${formatTime(component.since)}` : "";
      const checked = component.checked_at ? `checked ${formatTime(component.checked_at)}` : "";
      card.since.textContent = [since, checked].filter(Boolean).join(" · ");
      container.append(card.root); // appending an existing node moves it: keeps the order without rebuilding
      // starting: no verdict yet (first readings), which is not a problem
      if (status !== "healthy" && status !== "starting") problems.push({ name, status, message: component.message || component.error || "" });
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
    fillFigures(byId("breaker"), breaker || {});
  }

  function renderGate(gate) {
    let status = "unknown", text = "unknown";
    if (gate && typeof gate.heavy_work_allowed === "boolean") {
      status = gate.heavy_work_allowed ? "healthy" : "degraded";
      text = gate.heavy_work_allowed ? "open" : "deferred";
    }
    setBadge(byId("gate-badge"), status, text);
    fillFigures(byId("gate"), gate || {});
  }

  function renderHealth(report) {
    const overall = statusOf(report.status);
    setBadge(byId("overall"), overall);
    document.title = `${overall} · polymarket-copy-bot monitoring`;
    byId("environment").textContent = report.environment || "–";
    byId("uptime").textContent = formatDuration(report.uptime_seconds);
    renderComponents(report.components || {});
    renderBreaker(report.circuit_breaker);
    renderGate(report.gate);
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
    nodes.push(svg("text", { x: left - 4, y: top + 3, class: "tick", "text-anchor": "end" }, formatValue(vmax)));
    nodes.push(svg("text", { x: left - 4, y: H - bottom, class: "tick", "text-anchor": "end" }, "0"));
    const when = (t) => new Date(t * 1000).toLocaleTimeString();
    nodes.push(svg("text", { x: left, y: H - 6, class: "tick" }, when(t0)));
    nodes.push(svg("text", { x: W - right, y: H - 6, class: "tick", "text-anchor": "end" }, when(t1)));
    if (reference) {
      const ry = y(reference.value);
      nodes.push(svg("line", { x1: left, y1: ry, x2: W - right, y2: ry, class: "reference" }));
      nodes.push(svg("text", { x: W - right, y: ry - 3, class: "tick reference-label", "text-anchor": "end" },
        `${reference.label} ${formatValue(reference.value)}`));
    }
    if (offScale) {
      nodes.push(svg("text", { x: W - right, y: top + 3, class: "tick reference-label", "text-anchor": "end" },
        `${offScale.label} ${formatValue(offScale.value)} (above)`));
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
      nodes.push(svg("text", { x: legendX, y: 12, class: `legend ${s.cls}` }, `${s.name} ${formatValue(last)}`));
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

  // --- polling -------------------------------------------------------------------------------------

  async function fetchJson(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    // /health answers 503 with the full report when the overall status is critical
    if (!response.ok && !(url === "/health" && response.status === 503)) {
      throw new Error(`${url} answered HTTP ${response.status}`);
    }
    return response.json();
  }

  function markUpdated(report) {
    const now = new Date();
    const stamp = byId("last-updated");
    stamp.textContent = now.toLocaleTimeString();
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
      const [report, historyData] = await Promise.all([fetchJson("/health"), fetchJson("/api/history")]);
      renderHealth(report);
      renderHistory(historyData);
      markUpdated(report);
    } catch (error) {
      markOffline(error);
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  refresh();
})();
