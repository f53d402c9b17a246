/* Live training charts (uPlot). Elements `<div data-metric-chart data-jobs="uuid,…" data-key="train/loss">`
 * fetch /api/v1/metrics/series/ and draw, per job, the bucket means as a line and each bucket's min..max
 * as a band, so a spike is never hidden. Dragging zooms and re-queries that step range; "reset zoom"
 * goes back to the whole run. Panels with `data-metric-ws` open a websocket: new points are appended,
 * progress bars, ETAs and job states updated without reloading. A chart's `data-marks` (JSON
 * [{step, kind: "alert" | "restart"}]) draws vertical markers, and pushed `alert`s add to them; a page
 * address ending in `#step-N` scrolls to the loss chart and highlights that step. */
(function () {
  "use strict";
  if (window.TanukiMetrics) return;
  const API = "/api/v1/metrics/series/";
  const COLORS = ["#8b5e3c", "#2a5db0", "#2f7d4f", "#b3261e", "#7b4bb3", "#b26a00", "#1f8a8a", "#6b625a"];
  const MAX_LIVE_POINTS = 4000; // past this, appended points are re-downsampled by the server
  const gettext = window.gettext || function (s) { return s; };
  const charts = [];
  const MARK_STYLE = {
    alert: { color: "#b3261e", dash: [], label: function () { return gettext("loss alert"); } },
    restart: { color: "#6b625a", dash: [4, 3], label: function () { return gettext("restart"); } },
  };

  // Tick labels with as many significant digits as it takes for neighbours to differ (a learning rate
  // axis otherwise reads "0.005 0.005 0.005"); small or large numbers in exponent notation (5e-5).
  function formatTick(v, digits) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a < 1e-3 || a >= 1e6) {
      return v.toExponential(digits - 1).replace(/\.?0+e/, "e").replace("e+", "e");
    }
    return String(Number(v.toPrecision(digits)));
  }

  function tickValues(u, splits) {
    for (let digits = 1; digits <= 15; digits++) {
      const labels = splits.map(function (v) { return v === null || v === undefined ? "" : formatTick(v, digits); });
      if (new Set(labels).size === labels.length) return labels;
    }
    return splits.map(String);
  }

  function drawMarks(u, chart) {
    const ctx = u.ctx;
    const top = u.bbox.top;
    const height = u.bbox.height;
    const lo = u.scales.x.min;
    const hi = u.scales.x.max;
    ctx.save();
    if (chart.highlight !== null && chart.highlight >= lo && chart.highlight <= hi) {
      const x = u.valToPos(chart.highlight, "x", true);
      const w = Math.max(6 * uPlot.pxRatio, 1);
      ctx.fillStyle = "rgba(255, 196, 0, 0.35)";
      ctx.fillRect(x - w / 2, top, w, height);
    }
    chart.marks.forEach(function (mark) {
      if (mark.step < lo || mark.step > hi) return;
      const style = MARK_STYLE[mark.kind] || MARK_STYLE.alert;
      const x = Math.round(u.valToPos(mark.step, "x", true));
      ctx.strokeStyle = style.color;
      ctx.lineWidth = 1.5 * uPlot.pxRatio;
      ctx.setLineDash(style.dash.map(function (d) { return d * uPlot.pxRatio; }));
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.fillStyle = style.color;
      ctx.font = 10 * uPlot.pxRatio + "px sans-serif";
      ctx.fillText(String(mark.step), x + 3 * uPlot.pxRatio, top + 11 * uPlot.pxRatio);
    });
    ctx.restore();
  }

  function addMark(chart, mark) {
    const known = chart.marks.some(function (m) { return m.step === mark.step && m.kind === mark.kind; });
    if (!known) chart.marks.push(mark);
    drawLegend(chart);
    if (chart.plot) chart.plot.redraw(false);
  }

  function drawLegend(chart) {
    chart.legend.replaceChildren();
    const item = function (color, text, kind) {
      const span = document.createElement("span");
      span.className = "metric-legend-item" + (kind ? " metric-legend-mark" : "");
      if (kind) span.dataset.markKind = kind;
      const swatch = document.createElement("i");
      swatch.style.background = color;
      span.append(swatch, document.createTextNode(text));
      chart.legend.append(span);
    };
    (chart.drawnJobs || []).forEach(function (job) {
      item(COLORS[chart.jobs.indexOf(job) % COLORS.length], chart.names[job], null);
    });
    Object.keys(MARK_STYLE).forEach(function (kind) {
      if (chart.marks.some(function (m) { return m.kind === kind; })) item(MARK_STYLE[kind].color, MARK_STYLE[kind].label(), kind);
    });
  }

  function band(color) {
    return color + "33";
  }

  function query(chart, range) {
    const params = new URLSearchParams();
    chart.jobs.forEach(function (job) { params.append("job", job); });
    params.set("key", chart.key);
    params.set("points", "2000");
    if (range) {
      params.set("min_step", String(Math.max(0, Math.floor(range[0]))));
      params.set("max_step", String(Math.max(0, Math.ceil(range[1]))));
    }
    return fetch(API + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { series: [] }; });
  }

  function load(chart, range) {
    chart.range = range || null;
    chart.resetButton.hidden = !chart.range;
    return query(chart, range).then(function (body) {
      chart.tables = {};
      chart.names = {};
      (body.series || []).forEach(function (s) {
        chart.tables[s.job] = [s.steps.slice(), s.values.slice(), s.mins.slice(), s.maxs.slice()];
        chart.names[s.job] = s.name || s.job.slice(0, 8);
      });
      draw(chart);
    });
  }

  function joined(chart) {
    const tables = chart.jobs.filter(function (job) { return chart.tables[job] && chart.tables[job][0].length; })
      .map(function (job) { return chart.tables[job]; });
    return { jobs: chart.jobs.filter(function (job) { return chart.tables[job] && chart.tables[job][0].length; }),
      data: tables.length ? uPlot.join(tables) : null };
  }

  function draw(chart) {
    const j = joined(chart);
    chart.empty.hidden = !!j.data;
    if (!j.data) {
      if (chart.plot) { chart.plot.destroy(); chart.plot = null; }
      return;
    }
    const signature = j.jobs.join(",");
    if (chart.plot && chart.signature === signature) {
      chart.plot.setData(j.data, true);
      return;
    }
    if (chart.plot) chart.plot.destroy();
    chart.signature = signature;
    const series = [{ label: gettext("step") }];
    const bands = [];
    j.jobs.forEach(function (job, i) {
      const color = COLORS[chart.jobs.indexOf(job) % COLORS.length];
      const base = 1 + i * 3;
      series.push({ label: chart.names[job], stroke: color, width: 1.5, spanGaps: true, points: { show: false } });
      series.push({ label: "min", stroke: band(color), width: 0, spanGaps: true, points: { show: false } });
      series.push({ label: "max", stroke: band(color), width: 0, spanGaps: true, points: { show: false } });
      bands.push({ series: [base + 2, base + 1], fill: band(color) });
    });
    chart.plot = new uPlot({
      width: Math.max(240, chart.el.clientWidth || 480),
      height: 220,
      series: series,
      bands: bands,
      legend: { show: false },
      scales: { x: { time: false } },
      axes: [{}, { size: 60, values: tickValues }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        draw: [function (u) { drawMarks(u, chart); }],
        setSelect: [function (u) {
          if (u.select.width < 4) return;
          const lo = u.posToVal(u.select.left, "x");
          const hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          load(chart, [lo, hi]);
        }],
      },
    }, j.data, chart.canvas);
    chart.drawnJobs = j.jobs;
    drawLegend(chart);
  }

  function init(el) {
    if (el.dataset.metricReady) return;
    el.dataset.metricReady = "1";
    const chart = {
      el: el,
      jobs: (el.dataset.jobs || "").split(",").filter(Boolean),
      key: el.dataset.key,
      tables: {}, names: {}, range: null, plot: null, marks: [], highlight: null, drawnJobs: [],
    };
    try {
      chart.marks = JSON.parse(el.dataset.marks || "[]");
    } catch (error) {
      chart.marks = [];
    }
    const tools = document.createElement("div");
    tools.className = "metric-tools";
    chart.legend = document.createElement("div");
    chart.legend.className = "metric-legend";
    chart.resetButton = document.createElement("button");
    chart.resetButton.type = "button";
    chart.resetButton.className = "small secondary";
    chart.resetButton.textContent = gettext("Reset zoom");
    chart.resetButton.hidden = true;
    chart.resetButton.addEventListener("click", function () { load(chart, null); });
    tools.append(chart.legend, chart.resetButton);
    chart.canvas = document.createElement("div");
    chart.empty = document.createElement("p");
    chart.empty.className = "empty";
    chart.empty.textContent = gettext("No data yet.");
    el.append(tools, chart.canvas, chart.empty);
    charts.push(chart);
    drawLegend(chart);
    load(chart, null).then(function () { followStepAnchor(); });
  }

  function addAlert(message) {
    const alert = message.alert;
    if (!alert || alert.step === null || alert.step === undefined) return;
    charts.forEach(function (chart) {
      if (chart.key === "train/loss" && chart.jobs.indexOf(message.job) >= 0) {
        addMark(chart, { step: alert.step, kind: "alert" });
      }
    });
  }

  // `#step-N` (the Slack alert's link): scroll to the loss chart and highlight step N.
  function followStepAnchor() {
    const match = /^#step-(\d+)$/.exec(window.location.hash);
    if (!match) return;
    const step = Number(match[1]);
    const chart = charts.filter(function (c) { return c.key === "train/loss"; })[0];
    if (!chart) return;
    if (chart.highlight !== step) {
      chart.highlight = step;
      chart.el.dataset.highlightStep = String(step);
      (chart.el.closest("figure") || chart.el).scrollIntoView({ block: "center" });
    }
    if (chart.plot) chart.plot.redraw(false);
  }

  function appendPoints(message) {
    if (message.refresh) {
      charts.forEach(function (chart) {
        if (chart.jobs.indexOf(message.job) >= 0 && !chart.range) load(chart, null);
      });
      return;
    }
    const points = message.points || {};
    charts.forEach(function (chart) {
      const values = points[chart.key];
      if (!values || chart.jobs.indexOf(message.job) < 0 || chart.range) return;
      const table = chart.tables[message.job] || (chart.tables[message.job] = [[], [], [], []]);
      if (!chart.names[message.job]) chart.names[message.job] = message.job.slice(0, 8);
      values.forEach(function (pair) {
        const last = table[0].length ? table[0][table[0].length - 1] : -Infinity;
        if (pair[0] < last) return; // already covered by a bucket from the server
        table[0].push(pair[0]); table[1].push(pair[1]); table[2].push(pair[1]); table[3].push(pair[1]);
      });
      if (table[0].length > MAX_LIVE_POINTS) { load(chart, null); return; }
      draw(chart);
    });
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    let s = Math.floor(seconds);
    const days = Math.floor(s / 86400); s -= days * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const clock = h + ":" + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
    return days ? days + "d " + clock : clock;
  }

  function compact(n) {
    if (n === null || n === undefined) return "–";
    const units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (let i = 0; i < units.length; i++) {
      if (Math.abs(n) >= units[i][0]) return (n / units[i][0]).toFixed(1) + units[i][1];
    }
    return n.toFixed(0);
  }

  function setText(root, selector, text) {
    root.querySelectorAll(selector).forEach(function (node) { node.textContent = text; });
  }

  function updateProgress(message) {
    const p = message.progress;
    if (p) {
      document.querySelectorAll('[data-progress-for="' + message.job + '"]').forEach(function (root) {
        const bar = root.querySelector("[data-progress-bar]");
        const started = p.step !== null && p.step !== undefined;
        const percent = !started || p.percent === null || p.percent === undefined ? 0 : p.percent;
        root.dataset.progressState = !started ? "waiting" : p.percent === null ? "unknown" : "running";
        if (bar) {
          bar.setAttribute("aria-valuenow", percent.toFixed(1));
          if (started) bar.removeAttribute("aria-valuetext");
          bar.firstElementChild.style.width = percent.toFixed(1) + "%";
        }
        if (started) {
          root.querySelectorAll("[data-progress-waiting]").forEach(function (node) {
            node.removeAttribute("data-progress-waiting");
            const slash = document.createTextNode(" / ");
            node.after(slash);
          });
          root.querySelectorAll("[data-progress-max][hidden]").forEach(function (node) { node.hidden = false; });
          setText(root, "[data-progress-step]", String(p.step));
        }
        setText(root, "[data-progress-max]", p.max_steps === null ? "?" : String(p.max_steps));
        if (p.restarts) {
          setText(root, "[data-progress-restarts]", String(p.restarts));
          root.querySelectorAll("[data-progress-restarts-box]").forEach(function (node) { node.hidden = false; });
        }
        setText(root, "[data-progress-tokens]", compact(p.tokens_seen));
        setText(root, "[data-progress-rate]", compact(p.tokens_per_s));
        setText(root, "[data-progress-eta]", formatDuration(p.eta_seconds));
      });
    }
    if (message.state) {
      document.querySelectorAll('[data-job-state="' + message.job + '"]').forEach(function (node) {
        const panel = node.closest("[data-state-labels]");
        const labels = panel ? JSON.parse(panel.dataset.stateLabels) : {};
        node.textContent = labels[message.state] || message.state;
        node.dataset.state = message.state;
      });
    }
  }

  function connect(url) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    let retry = 1000;
    function open() {
      const socket = new WebSocket(scheme + window.location.host + url);
      socket.addEventListener("open", function () { retry = 1000; document.documentElement.dataset.metricLive = "open"; });
      socket.addEventListener("message", function (event) {
        const message = JSON.parse(event.data);
        appendPoints(message);
        addAlert(message);
        updateProgress(message);
        if (message.log_text) {
          document.querySelectorAll('[data-job-log="' + message.job + '"]').forEach(function (node) {
            if (node.dataset.stream && node.dataset.stream !== message.log_stream) return;
            node.append(document.createTextNode(message.log_text));
          });
        }
        document.dispatchEvent(new CustomEvent("metrics:update", { detail: message }));
      });
      socket.addEventListener("close", function (event) {
        if (event.code === 1000) return;
        setTimeout(open, retry);
        retry = Math.min(retry * 2, 30000);
      });
    }
    open();
  }

  function start() {
    document.querySelectorAll("[data-metric-chart]").forEach(init);
    const urls = new Set();
    document.querySelectorAll("[data-metric-ws]").forEach(function (el) { urls.add(el.dataset.metricWs); });
    urls.forEach(connect);
  }

  // Panels swapped in by htmx get their charts too.
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("[data-metric-chart]").forEach(init);
  });

  window.addEventListener("hashchange", followStepAnchor);

  window.TanukiMetrics = { start: start, charts: charts, formatTick: formatTick };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
