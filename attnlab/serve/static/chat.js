/* The chat page: ELIZA or a trained language model, replies streamed token by token from the
 * server's OpenAI-compatible API; optionally ELIZA side by side with the model on the same input. */
"use strict";

(() => {
  const { el, streamChat, runs, showError } = studio;
  const $ = (id) => document.getElementById(id);
  const errorBox = $("error");
  let panes = [];
  let busy = false;

  function makePane(model, title) {
    const messages = el("div", { className: "messages" });
    const node = el("section", { className: "pane", dataset: { model } }, el("h2", {}, title), messages);
    return { model, node, messages, history: [] };
  }

  function layout() {
    const model = $("model").value;
    const label = $("model").selectedOptions[0] ? $("model").selectedOptions[0].textContent : model;
    panes = [makePane(model, label)];
    if ($("side-by-side").checked && model !== "eliza") panes.push(makePane("eliza", "ELIZA (1966)"));
    $("panes").replaceChildren(...panes.map((p) => p.node));
    panes.forEach((p, i) => { p.node.id = i === 0 ? "pane-main" : "pane-eliza"; });
  }

  function bubble(pane, role, content) {
    const node = el("div", { className: `msg ${role}` }, content);
    pane.messages.append(node);
    pane.messages.scrollTop = pane.messages.scrollHeight;
    return node;
  }

  function sampling() {
    const body = { temperature: Number($("temperature").value), max_tokens: Number($("max-tokens").value) || 200 };
    const topK = Number($("top-k").value);
    const topP = Number($("top-p").value);
    if (topK > 0) body.top_k = topK;
    if (topP < 1) body.top_p = topP;
    return body;
  }

  async function answer(pane) {
    const node = bubble(pane, "assistant", "");
    node.classList.add("streaming");
    let text = "";
    try {
      for await (const piece of streamChat(Object.assign({ model: pane.model, messages: pane.history }, sampling()))) {
        text += piece;
        node.textContent = text;
        pane.messages.scrollTop = pane.messages.scrollHeight;
      }
      if (!text) node.textContent = text = "...";
      pane.history.push({ role: "assistant", content: text });
    } catch (err) {
      node.textContent = "(no reply: see the error above)";
      node.classList.add("failed");  // not part of the history: Regenerate tries again
      showError(errorBox, err);
    } finally {
      node.classList.remove("streaming");
      node.dataset.done = "1";
    }
  }

  async function run(task) {
    if (busy) return;
    busy = true;
    $("send").disabled = $("regenerate").disabled = true;
    showError(errorBox, null);
    try { await Promise.all(panes.map(task)); } finally {
      busy = false;
      $("send").disabled = $("regenerate").disabled = false;
    }
  }

  function send(event) {
    event.preventDefault();
    const text = $("input").value.trim();
    if (!text || busy) return;
    $("input").value = "";
    run(async (pane) => {
      pane.history.push({ role: "user", content: text });
      bubble(pane, "user", text);
      await answer(pane);
    });
  }

  function regenerate() {
    run(async (pane) => {
      const last = pane.history[pane.history.length - 1];
      if (!last) return;
      if (last.role === "assistant") pane.history.pop();
      const shown = pane.messages.lastChild;
      if (shown && shown.classList.contains("assistant")) shown.remove();
      await answer(pane);
    });
  }

  for (const [slider, out] of [["temperature", "temperature-value"], ["top-p", "top-p-value"]]) {
    $(slider).addEventListener("input", () => { $(out).textContent = $(slider).value; });
  }
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("regenerate").addEventListener("click", regenerate);
  $("clear").addEventListener("click", () => { if (!busy) layout(); });
  $("model").addEventListener("change", () => { if (!busy) layout(); });
  $("side-by-side").addEventListener("change", () => { if (!busy) layout(); });

  runs().then((list) => {
    for (const r of list.filter((r) => r.capabilities.includes("generate"))) {
      $("model").append(el("option", { value: r.name }, `${r.name} (${r.kind})`));
    }
    const wanted = new URLSearchParams(location.search).get("model");
    if (wanted && [...$("model").options].some((o) => o.value === wanted)) $("model").value = wanted;
    layout();
    document.body.dataset.ready = "1";
  }).catch((err) => { showError(errorBox, err); layout(); });
})();
