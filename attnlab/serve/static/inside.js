/* The inside page: a text and a run; its tokens, the attention of every layer and head (the
 * attention viewer of `attnlab attention`, in a sandboxed frame), the next-token distribution as
 * bars that follow the temperature and top-k sliders (click one to append it), and for translation
 * runs the translation with its alignment / cross-attention. */
"use strict";

(() => {
  const { el, postJSON, runs, showError } = studio;
  const $ = (id) => document.getElementById(id);
  const errorBox = $("error");
  const SHOWN_BARS = 20;
  let byName = {};
  let next = null;  // the last /api/next answer: logits of the likeliest tokens
  let generation = 0;  // drop answers to texts that are no longer current

  /** Probabilities of the given logits at this temperature, kept to the top k (0: all), renormalised. */
  function distribution(tokens, temperature, topK) {
    const kept = topK > 0 ? tokens.slice(0, topK) : tokens;  // tokens arrive likeliest first
    const scaled = kept.map((t) => t.logit / temperature);
    const top = Math.max(...scaled);
    const weights = scaled.map((z) => Math.exp(z - top));
    const total = weights.reduce((a, b) => a + b, 0);
    return kept.map((t, i) => ({ token: t, p: weights[i] / total }));
  }

  function drawBars() {
    if (!next) return;
    const temperature = Number($("temperature").value);
    const topK = Number($("top-k").value);
    $("temperature-value").textContent = temperature.toFixed(2);
    $("top-k-value").textContent = topK > 0 ? String(topK) : "off";
    const rows = distribution(next.next, temperature, topK).slice(0, SHOWN_BARS);
    const cells = [];
    rows.forEach(({ token, p }, i) => {
      const fill = el("div", { className: "bar-fill" });
      fill.style.width = `${(100 * p).toFixed(2)}%`;
      const pick = () => step(token.text);
      const label = el("div", { className: "bar-label", title: `token id ${token.id}` }, token.label);
      const track = el("div", { className: "bar-track", dataset: { p: p.toFixed(6), index: String(i) } }, fill);
      label.addEventListener("click", pick);
      track.addEventListener("click", pick);
      cells.push(label, track, el("div", { className: "bar-p" }, `${(100 * p).toFixed(1)}%`));
    });
    $("bars").replaceChildren(...cells);
    $("bars").dataset.temperature = String(temperature);
  }

  function step(text) {
    $("text").value += text;
    look();
  }

  function showTokens(tokens) {
    $("tokens").replaceChildren(...tokens.map((t) => el("span", { className: "tok" }, t)));
    $("tokens-card").hidden = false;
  }

  async function showViewer(run, text, mine) {
    const url = `/api/viewer?run=${encodeURIComponent(run)}&text=${encodeURIComponent(text)}`;
    const response = await fetch(url);  // first as data: an error is shown as text, not in the frame
    if (mine !== generation) return;
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { message = (await response.json()).error.message; } catch (err) { /* keep the status */ }
      $("attention-note").textContent = message;
      $("viewer").hidden = true;
    } else {
      $("attention-note").textContent = "Head view: hover a token; model view: every layer x head, click to enlarge.";
      $("viewer").hidden = false;
      $("viewer").src = url;
    }
    $("attention-card").hidden = false;
  }

  async function look(event) {
    if (event) event.preventDefault();
    const run = byName[$("run").value];
    const text = $("text").value;
    if (!run || !text) return;
    const mine = ++generation;
    showError(errorBox, null);
    document.body.dataset.busy = "1";
    const caps = run.capabilities;
    $("next-card").hidden = !caps.includes("generate");
    $("translation-card").hidden = !caps.includes("translate");
    $("attention-card").hidden = !caps.includes("attention");
    const jobs = [];
    if (caps.includes("generate")) {
      jobs.push(postJSON("/api/next", { model: run.name, text }).then((answer) => {
        if (mine !== generation) return;
        next = answer;
        showTokens(answer.tokens);
        $("top-k").max = String(Math.min(64, answer.next.length));
        drawBars();
      }));
    }
    if (caps.includes("translate")) {
      jobs.push(postJSON("/api/translate", { model: run.name, text }).then((answer) => {
        if (mine === generation) $("translation").textContent = answer.translation;
      }));
    }
    if (caps.includes("attention")) jobs.push(showViewer(run.name, text, mine));
    try {
      await Promise.all(jobs);
    } catch (err) {
      showError(errorBox, err);
    } finally {
      if (mine === generation) document.body.dataset.busy = "";
    }
  }

  $("composer").addEventListener("submit", look);
  $("temperature").addEventListener("input", drawBars);
  $("top-k").addEventListener("input", drawBars);
  $("run").addEventListener("change", () => {
    const run = byName[$("run").value];
    $("run-kind").textContent = run ? `${run.kind}: ${run.capabilities.join(", ")}` : "";
    next = null;
    look();
  });

  runs().then((list) => {
    const usable = list.filter((r) => r.capabilities.some((c) => ["generate", "attention", "translate"].includes(c)));
    byName = Object.fromEntries(usable.map((r) => [r.name, r]));
    $("run").replaceChildren(...usable.map((r) => el("option", { value: r.name }, `${r.name} (${r.kind})`)));
    const wanted = new URLSearchParams(location.search).get("run");
    if (wanted && byName[wanted]) $("run").value = wanted;
    if (!usable.length) showError(errorBox, "no run to look inside: train one with 'attnlab train gpt'");
    document.body.dataset.ready = "1";
    $("run").dispatchEvent(new Event("change"));
  }).catch((err) => showError(errorBox, err));
})();
