/* attnlab attention viewer.
 *
 * Reads the JSON in <script id="attn-data">: parts (self / encoder / decoder / cross / alignment),
 * each with query and key labels and weights[layer][head][query][key] packed as little-endian
 * uint16 (value / 65535), base64. Two views:
 *   head view:  query tokens on the left, key tokens on the right, one line per (query, key) pair
 *               and head, opacity = attention weight, colour = head. Hover a token to focus it,
 *               click it to pin; click a head's colour to show or hide it, double-click to solo it.
 *   model view: a thumbnail heat map for every layer x head; click one to enlarge it.
 * No network, no libraries: it works opened straight from disk.
 */
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("attn-data").textContent);
  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf"];
  // viridis sampled at 0, 0.1, ..., 1
  const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70",
    "#7ad151", "#bddf26", "#fde725"].map(hexToRgb);
  const MASKED = [228, 228, 228];
  const ROW = 18;

  const state = { part: 0, view: "head", layer: 0, heads: null, focus: null, pinned: null };

  function hexToRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  /** Colour of a weight: viridis on a square-root scale, as in the PNG heat maps. */
  function colour(w) {
    const t = Math.sqrt(Math.min(1, Math.max(0, w))) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
    const f = t - i;
    const a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [0, 1, 2].map((c) => Math.round(a[c] + f * (b[c] - a[c])));
  }

  function headColour(h, n) {
    return n <= TAB10.length ? TAB10[h] : `hsl(${Math.round((360 * h) / n)}, 70%, 45%)`;
  }

  function decode(part) {
    const bin = atob(part.weights);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const view = new DataView(bytes.buffer);
    const out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = view.getUint16(2 * i, true) / 65535;
    part.w = out;
    [part.L, part.H, part.Tq, part.Tk] = part.shape;
  }
  DATA.parts.forEach(decode);

  /** weight of query i on key j, in layer l (index), head h (index) */
  function weight(p, l, h, i, j) {
    return p.w[((l * p.H + h) * p.Tq + i) * p.Tk + j];
  }
  function masked(p, i, j) {
    return p.causal && j > i;
  }

  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const c of children) node.append(c);
    return node;
  };

  // ------------------------------------------------------------------------------- page skeleton
  const app = document.getElementById("app");
  const header = el("header", {},
    el("h1", { textContent: DATA.title }),
    el("p", { textContent: DATA.description }),
    el("p", {}, "text: ", el("span", { className: "text", textContent: DATA.text })));
  for (const note of DATA.notes) header.append(el("p", { className: "note", textContent: note }));
  app.append(header);

  const partBar = el("nav", { className: "bar", id: "part-tabs" }, el("span", { className: "label", textContent: "attention" }));
  DATA.parts.forEach((p, k) => {
    const b = el("button", { className: "tab", textContent: p.name, title: p.title, type: "button" });
    b.dataset.part = String(k);
    b.addEventListener("click", () => { setPart(k); });
    partBar.append(b);
  });
  if (DATA.parts.length < 2) partBar.hidden = true;
  app.append(partBar);

  const viewBar = el("nav", { className: "bar", id: "view-tabs" }, el("span", { className: "label", textContent: "view" }));
  for (const [name, label] of [["head", "Head view"], ["model", "Model view"]]) {
    const b = el("button", { className: "tab", textContent: label, type: "button" });
    b.dataset.view = name;
    b.addEventListener("click", () => { state.view = name; render(); });
    viewBar.append(b);
  }
  app.append(viewBar);

  const partTitle = el("p", { className: "hint", id: "part-title" });
  app.append(partTitle);

  // ------------------------------------------------------------------------------- head view
  const headView = el("section", { id: "head-view" });
  const layerSelect = el("select", { id: "layer-select" });
  layerSelect.addEventListener("change", () => { state.layer = Number(layerSelect.value); drawHeadView(); });
  const swatches = el("div", { className: "swatches", id: "head-swatches" });
  const allButton = el("button", { className: "small", textContent: "all heads", type: "button", id: "all-heads" });
  allButton.addEventListener("click", () => { state.heads = new Set(range(part().H)); drawHeadView(); });
  headView.append(
    el("div", { className: "controls" },
      el("label", {}, "layer ", layerSelect),
      el("span", { className: "swatches" }, el("label", { textContent: "heads " }), swatches, allButton),
      el("span", { className: "hint", textContent: "hover a token to focus it, click to pin; click a head's colour to show/hide it, double-click to show only it" })),
  );
  const focusInfo = el("div", { id: "focus-info" });
  const leftTitle = el("div", { className: "axis-title" });
  const rightTitle = el("div", { className: "axis-title" });
  const leftTokens = el("div", { className: "tokens left", id: "query-tokens" });
  const rightTokens = el("div", { className: "tokens right", id: "key-tokens" });
  const lines = el("canvas", { id: "lines" });
  headView.append(focusInfo, el("div", { className: "head-body" },
    el("div", {}, leftTitle, leftTokens), el("div", {}, el("div", { className: "axis-title" }), lines),
    el("div", {}, rightTitle, rightTokens)));
  app.append(headView);

  // ------------------------------------------------------------------------------- model view
  const modelView = el("section", { id: "model-view" });
  const legend = el("div", { className: "legend" });
  const ramp = el("div", { className: "ramp" });
  ramp.style.background = "linear-gradient(to right, " + range(11).map((k) => {
    const c = colour((k / 10) ** 2);
    return `rgb(${c.join(",")}) ${k * 10}%`;
  }).join(", ") + ")";
  legend.append("0", ramp, "1", el("span", { textContent: "attention weight (square-root scale: the middle is 0.25)" }),
    el("span", { className: "masked" }), el("span", { textContent: "masked (future)" }));
  const grid = el("div", { className: "model-grid", id: "model-grid" });
  modelView.append(el("p", { className: "hint", textContent: "rows: layers, columns: heads; click a map to enlarge it" }), legend, grid);
  app.append(modelView);

  const overlayTitle = el("h2", { id: "overlay-title" });
  const overlayValue = el("div", { id: "overlay-value" });
  const overlayCanvas = el("canvas", { id: "overlay-canvas" });
  const closeButton = el("button", { className: "small", textContent: "close (Esc)", type: "button", id: "overlay-close" });
  const overlay = el("div", { id: "overlay" },
    el("div", { className: "dialog", role: "dialog" }, el("header", {}, overlayTitle, closeButton), overlayValue, overlayCanvas));
  overlay.addEventListener("click", (e) => { if (e.target === overlay) closeOverlay(); });
  closeButton.addEventListener("click", closeOverlay);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeOverlay(); });
  document.body.append(overlay);

  function range(n) { return Array.from({ length: n }, (_, i) => i); }
  function part() { return DATA.parts[state.part]; }

  function setPart(k) {
    state.part = k;
    state.layer = 0;
    state.heads = new Set(range(part().H));
    state.focus = state.pinned = null;
    closeOverlay();
    render();
  }

  function render() {
    for (const b of partBar.querySelectorAll("button")) b.setAttribute("aria-selected", String(Number(b.dataset.part) === state.part));
    for (const b of viewBar.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.view === state.view));
    const p = part();
    partTitle.textContent = `${p.title}: ${p.L} layer${p.L > 1 ? "s" : ""} x ${p.H} head${p.H > 1 ? "s" : ""}, ` +
      `${p.Tq} x ${p.Tk} tokens`;
    headView.hidden = state.view !== "head";
    modelView.hidden = state.view !== "model";
    document.body.dataset.view = state.view;
    document.body.dataset.part = p.name;
    if (state.view === "head") buildHeadView(); else buildModelView();
  }

  // ------------------------------------------------------------------------------- head view drawing
  function buildHeadView() {
    const p = part();
    layerSelect.replaceChildren(...p.layers.map((id, l) => el("option", { value: String(l), textContent: String(id) })));
    layerSelect.value = String(state.layer);
    swatches.replaceChildren(...p.heads.map((id, h) => {
      const b = el("button", { className: "swatch", textContent: String(id), type: "button", title: `head ${id}` });
      b.style.background = headColour(h, p.H);
      b.dataset.head = String(h);
      b.addEventListener("click", () => toggleHead(h));
      b.addEventListener("dblclick", () => { state.heads = new Set([h]); drawHeadView(); });
      return b;
    }));
    leftTitle.textContent = p.queryAxis;
    rightTitle.textContent = p.keyAxis;
    const makeTokens = (labels, side) => labels.map((label, i) => {
      const t = el("div", { className: "tok", textContent: label, title: `${label} (${side === "q" ? "query" : "key"} ${i})` });
      t.dataset.side = side;
      t.dataset.index = String(i);
      t.addEventListener("mouseenter", () => { if (!state.pinned) { state.focus = { side, index: i }; drawHeadView(); } });
      t.addEventListener("mouseleave", () => { if (!state.pinned) { state.focus = null; drawHeadView(); } });
      t.addEventListener("click", () => {
        const same = state.pinned && state.pinned.side === side && state.pinned.index === i;
        state.pinned = same ? null : { side, index: i };
        state.focus = state.pinned;
        drawHeadView();
      });
      return t;
    });
    leftTokens.replaceChildren(...makeTokens(p.queries, "q"));
    rightTokens.replaceChildren(...makeTokens(p.keys, "k"));
    drawHeadView();
  }

  function toggleHead(h) {
    if (state.heads.has(h)) state.heads.delete(h); else state.heads.add(h);
    drawHeadView();
  }

  function drawHeadView() {
    const p = part();
    const l = state.layer;
    const heads = [...state.heads].sort((a, b) => a - b);
    for (const b of swatches.children) b.classList.toggle("off", !state.heads.has(Number(b.dataset.head)));
    const rows = Math.max(p.Tq, p.Tk);
    const width = 260;
    const ratio = window.devicePixelRatio || 1;
    lines.width = width * ratio;
    lines.height = rows * ROW * ratio;
    lines.style.width = width + "px";
    lines.style.height = rows * ROW + "px";
    const ctx = lines.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, rows * ROW);
    const f = state.focus;
    ctx.lineWidth = f ? 3 : 2;
    const qs = f && f.side === "q" ? [f.index] : range(p.Tq);
    const ks = f && f.side === "k" ? [f.index] : range(p.Tk);
    let drawn = 0;
    for (const h of heads) {
      ctx.strokeStyle = headColour(h, p.H);
      for (const i of qs) {
        for (const j of ks) {
          if (masked(p, i, j)) continue;
          const w = weight(p, l, h, i, j);
          if (w < 0.004) continue;
          ctx.globalAlpha = f ? Math.sqrt(w) : w;  // focused: square-root scale, like the colours
          ctx.beginPath();
          ctx.moveTo(0, (i + 0.5) * ROW);
          ctx.lineTo(width, (j + 0.5) * ROW);
          ctx.stroke();
          drawn++;
        }
      }
    }
    ctx.globalAlpha = 1;
    lines.dataset.lines = String(drawn);
    lines.dataset.layer = String(l);
    lines.dataset.heads = heads.join(",");
    shadeTokens(p, l, heads, f);
    describeFocus(p, l, heads, f);
  }

  /** Highlight the focused token and colour the other side by its mean weight over the shown heads. */
  function shadeTokens(p, l, heads, f) {
    for (const t of [...leftTokens.children, ...rightTokens.children]) {
      t.style.background = "";
      t.style.color = "";
      t.classList.toggle("focus", !!f && t.dataset.side === f.side && Number(t.dataset.index) === f.index);
      t.classList.toggle("pinned", !!state.pinned && t.dataset.side === state.pinned.side &&
        Number(t.dataset.index) === state.pinned.index);
    }
    if (!f || !heads.length) return;
    const other = f.side === "q" ? rightTokens.children : leftTokens.children;
    for (const t of other) {
      const k = Number(t.dataset.index);
      const [i, j] = f.side === "q" ? [f.index, k] : [k, f.index];
      if (masked(p, i, j)) continue;
      let mean = 0;
      for (const h of heads) mean += weight(p, l, h, i, j);
      mean /= heads.length;
      const alpha = Math.sqrt(mean);  // white (ignored) -> blue (all the attention)
      t.style.background = `rgba(42, 111, 219, ${alpha.toFixed(3)})`;
      t.style.color = alpha > 0.6 ? "#fff" : "";
    }
  }

  function describeFocus(p, l, heads, f) {
    focusInfo.replaceChildren();
    if (!f) {
      focusInfo.append(`layer ${p.layers[l]}, heads ${heads.map((h) => p.heads[h]).join(", ") || "(none)"}: ` +
        "every line is one query looking at one key; the stronger the line, the larger the weight.");
      return;
    }
    if (!heads.length) { focusInfo.append("no head is shown: click a head's colour"); return; }
    const label = f.side === "q" ? p.queries[f.index] : p.keys[f.index];
    const pairs = [];
    const n = f.side === "q" ? p.Tk : p.Tq;
    for (let k = 0; k < n; k++) {
      const [i, j] = f.side === "q" ? [f.index, k] : [k, f.index];
      if (masked(p, i, j)) continue;
      let mean = 0;
      for (const h of heads) mean += weight(p, l, h, i, j);
      pairs.push([k, mean / heads.length]);
    }
    pairs.sort((a, b) => b[1] - a[1]);
    const names = f.side === "q" ? p.keys : p.queries;
    const verb = f.side === "q" ? `query ${f.index} looks most at` : `key ${f.index} is looked at most by`;
    focusInfo.append(el("code", { textContent: label }), ` (${verb}, mean of the shown heads): `);
    pairs.slice(0, 5).forEach(([k, w], r) => {
      if (r) focusInfo.append(", ");
      focusInfo.append(el("code", { textContent: names[k] }), ` ${w.toFixed(3)}`);
    });
  }

  // ------------------------------------------------------------------------------- model view drawing
  /** Draw weights[l][h] into ctx at (x0, y0) with cells of size cell (pixels). */
  function paint(ctx, p, l, h, x0, y0, cellW, cellH) {
    const img = ctx.createImageData(p.Tk, p.Tq);
    for (let i = 0; i < p.Tq; i++) {
      for (let j = 0; j < p.Tk; j++) {
        const c = masked(p, i, j) ? MASKED : colour(weight(p, l, h, i, j));
        const o = 4 * (i * p.Tk + j);
        img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
      }
    }
    const small = el("canvas", { width: p.Tk, height: p.Tq });
    small.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, x0, y0, p.Tk * cellW, p.Tq * cellH);
  }

  function buildModelView() {
    const p = part();
    const size = Math.max(48, Math.min(140, Math.floor(760 / p.H) - 12));
    const cellW = size / p.Tk, cellH = size / p.Tq;
    grid.style.gridTemplateColumns = `max-content repeat(${p.H}, ${size + 6}px)`;
    const cells = [el("div", { className: "corner", textContent: "layer \\ head" })];
    p.heads.forEach((id) => cells.push(el("div", { className: "colhead", textContent: `head ${id}` })));
    p.layers.forEach((layerId, l) => {
      cells.push(el("div", { className: "rowhead", textContent: `layer ${layerId}` }));
      p.heads.forEach((headId, h) => {
        const canvas = el("canvas", { width: size, height: size });
        paint(canvas.getContext("2d"), p, l, h, 0, 0, cellW, cellH);
        const thumb = el("div", { className: "thumb", tabIndex: 0, title: `layer ${layerId} · head ${headId}` }, canvas);
        thumb.dataset.layer = String(l);
        thumb.dataset.head = String(h);
        thumb.addEventListener("click", () => openOverlay(l, h));
        thumb.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openOverlay(l, h); } });
        cells.push(thumb);
      });
    });
    grid.replaceChildren(...cells);
  }

  function openOverlay(l, h) {
    const p = part();
    const cell = Math.max(5, Math.min(28, Math.floor(720 / Math.max(p.Tq, p.Tk))));
    const font = Math.max(8, Math.min(13, cell - 2));
    const ratio = window.devicePixelRatio || 1;
    const fontSpec = `${font}px ui-monospace, "DejaVu Sans Mono", monospace`;
    const measure = overlayCanvas.getContext("2d");
    measure.font = fontSpec;
    const longest = (labels) => Math.max(...labels.map((s) => measure.measureText(s).width));
    const left = Math.ceil(longest(p.queries)) + 10, top = Math.ceil(longest(p.keys)) + 10;
    const width = left + p.Tk * cell + 4, height = top + p.Tq * cell + 4;
    overlayCanvas.width = width * ratio;
    overlayCanvas.height = height * ratio;
    overlayCanvas.style.width = width + "px";
    overlayCanvas.style.height = height + "px";
    const ctx = overlayCanvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, height);
    paint(ctx, p, l, h, left, top, cell, cell);
    ctx.fillStyle = "#1d232b";
    ctx.font = fontSpec;  // resizing the canvas reset the context's font
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    p.queries.forEach((s, i) => ctx.fillText(s, left - 5, top + (i + 0.5) * cell));
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    p.keys.forEach((s, j) => ctx.fillText(s, -(top - 5), left + (j + 0.5) * cell));
    ctx.restore();
    overlayCanvas.onmousemove = (e) => {
      const r = overlayCanvas.getBoundingClientRect();
      const j = Math.floor((e.clientX - r.left - left) / cell), i = Math.floor((e.clientY - r.top - top) / cell);
      if (i < 0 || j < 0 || i >= p.Tq || j >= p.Tk) { overlayValue.textContent = "move over the map to read a weight"; return; }
      overlayValue.textContent = masked(p, i, j)
        ? `${p.queries[i]} (query ${i}) cannot see ${p.keys[j]} (key ${j}): masked`
        : `${p.queries[i]} (query ${i}) → ${p.keys[j]} (key ${j}): ${weight(p, l, h, i, j).toFixed(4)}`;
    };
    overlayTitle.textContent = `${p.name} · layer ${p.layers[l]} · head ${p.heads[h]}`;
    overlayValue.textContent = `rows: ${p.queryAxis}; columns: ${p.keyAxis}. Move over the map to read a weight.`;
    overlay.classList.add("open");
    overlay.dataset.layer = String(p.layers[l]);
    overlay.dataset.head = String(p.heads[h]);
    closeButton.focus();
  }

  function closeOverlay() {
    overlay.classList.remove("open");
  }

  // expose a little state for tests and the curious (window.attnViewer.state in the console)
  window.attnViewer = { state, data: DATA };
  setPart(0);
})();
