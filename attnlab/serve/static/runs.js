/* The runs page: every run under the served folders with its kind, size, steps, best validation
 * loss and loss curves (inline SVG); polls, so a run still training updates live. */
"use strict";

(() => {
  const { el, getJSON, runs, formatCount, showError } = studio;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 320, HEIGHT = 90, PAD = 4;
  const POLL_MS = 2000;
  const seen = {};  // run name -> {updated, row}

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  /** Training and validation loss against step, on one shared scale. */
  function curve(rows) {
    const chart = svg("svg", { class: "curve", width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}` });
    const series = [["loss", "#2f6fdf"], ["val_loss", "#e8730c"]].map(([key, colour]) =>
      [rows.filter((r) => typeof r[key] === "number" && typeof r.step === "number").map((r) => [r.step, r[key]]), colour]);
    const points = series.flatMap(([pts]) => pts);
    if (!points.length) {
      const note = svg("text", { x: PAD, y: HEIGHT / 2, fill: "#667085", "font-size": 12 });
      note.textContent = "no metrics yet";
      chart.append(note);
      return chart;
    }
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const sx = (x) => PAD + ((x - x0) / (x1 - x0 || 1)) * (WIDTH - 2 * PAD);
    const sy = (y) => HEIGHT - PAD - ((y - y0) / (y1 - y0 || 1)) * (HEIGHT - 2 * PAD);
    chart.append(svg("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "#fafbfd", stroke: "#d9dee7" }));
    for (const [pts, colour] of series) {
      if (!pts.length) continue;
      const line = svg("polyline", { fill: "none", stroke: colour, "stroke-width": 1.5,
        points: pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") });
      chart.append(line);
    }
    const label = svg("text", { x: WIDTH - PAD, y: 13, "text-anchor": "end", fill: "#667085", "font-size": 11 });
    label.textContent = `${y1.toFixed(2)} .. ${y0.toFixed(2)}`;
    chart.append(label);
    chart.dataset.points = String(points.length);
    return chart;
  }

  function cells(run) {
    const loss = run.best_val_loss === null ? "-" : run.best_val_loss.toFixed(4);
    return [el("td", {}, run.name), el("td", {}, run.kind || ""), el("td", {}, run.data || ""),
      el("td", { className: "num" }, formatCount(run.parameters)), el("td", { className: "num" }, String(run.steps)),
      el("td", { className: "num" }, loss)];
  }

  async function refresh() {
    const list = await runs();
    const body = $("runs").tBodies[0];
    const names = new Set(list.map((r) => r.name));
    for (const name of Object.keys(seen)) {
      if (!names.has(name)) { seen[name].row.remove(); delete seen[name]; }
    }
    for (const run of list) {
      let entry = seen[run.name];
      if (!entry) {
        entry = seen[run.name] = { updated: undefined, row: el("tr", { dataset: { run: run.name } }) };
        body.append(entry.row);
      }
      if (entry.updated === run.updated && entry.row.childElementCount) continue;
      const metrics = await getJSON(`/api/metrics?run=${encodeURIComponent(run.name)}`);
      entry.row.replaceChildren(...cells(run), el("td", {}, curve(metrics.rows)));
      entry.row.dataset.steps = String(run.steps);
      entry.updated = run.updated;
    }
    $("summary").textContent = list.length
      ? `${list.length} run${list.length === 1 ? "" : "s"}; updated every ${POLL_MS / 1000} s while the page is open.`
      : "No runs here yet: train one with 'attnlab train gpt'.";
    document.body.dataset.ready = "1";
  }

  async function poll() {
    try {
      await refresh();
      showError($("error"), null);
    } catch (err) {
      showError($("error"), err);
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
