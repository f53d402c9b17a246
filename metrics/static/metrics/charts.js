/* Live training charts (uPlot). Elements `<div data-metric-chart data-jobs="uuid,…" data-key="train/loss">`
 * fetch /api/v1/metrics/series/ and draw, per job, the bucket means as a line and each bucket's min..max
 * as a band, so a spike is never hidden. Dragging zooms and re-queries that step range; "reset zoom"
 * goes back to the whole run. Panels with `data-metric-ws` open a websocket: new points are appended,
 * progress bars, ETAs and job states updated without reloading. */
(function () {
  "use strict";
  if (window.TanukiMetrics) return;
  const API = "/api/v1/metrics/series/";
  const COLORS = ["#8b5e3c", "#2a5db0", "#2f7d4f", "#b3261e", "#7b4bb3", "#b26a00", "#1f8a8a", "#6b625a"];
  const MAX_LIVE_POINTS = 4000; // past this, appended points are re-downsampled by the server
  const gettext = window.gettext || function (s) { return s; };
  const charts = [];

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
      axes: [{}, { size: 60 }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [function (u) {
          if (u.select.width < 4) return;
          const lo = u.posToVal(u.select.left, "x");
          const hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          load(chart, [lo, hi]);
        }],
      },
    }, j.data, chart.canvas);
    chart.legend.replaceChildren();
    j.jobs.forEach(function (job) {
      const item = document.createElement("span");
      item.className = "metric-legend-item";
      const swatch = document.createElement("i");
      swatch.style.background = COLORS[chart.jobs.indexOf(job) % COLORS.length];
      item.append(swatch, document.createTextNode(chart.names[job]));
      chart.legend.append(item);
    });
  }

  function init(el) {
    if (el.dataset.metricReady) return;
    el.dataset.metricReady = "1";
    const chart = {
      el: el,
      jobs: (el.dataset.jobs || "").split(",").filter(Boolean),
      key: el.dataset.key,
      tables: {}, names: {}, range: null, plot: null,
    };
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
    load(chart, null);
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
        const percent = p.percent === null ? 0 : p.percent;
        if (bar) {
          bar.setAttribute("aria-valuenow", percent.toFixed(1));
          bar.firstElementChild.style.width = percent.toFixed(1) + "%";
        }
        setText(root, "[data-progress-step]", String(p.step));
        setText(root, "[data-progress-max]", p.max_steps === null ? "?" : String(p.max_steps));
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

  window.TanukiMetrics = { start: start, charts: charts };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
