/* attnlab studio: what every page shares (no dependencies, nothing downloaded).
 *
 * Text from users and models only ever reaches the page through textContent / text nodes
 * (el() appends strings as text nodes), never as HTML. */
"use strict";

const studio = (() => {
  /** A new element: el("div", {className: "x"}, "text", child, ...); strings become text nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  async function getJSON(url, options) {
    const response = await fetch(url, options);
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) throw new Error(body && body.error ? body.error.message : `HTTP ${response.status}`);
    return body;
  }

  function postJSON(url, data) {
    return getJSON(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
  }

  /** Stream a chat completion from the server's OpenAI API: yields the reply's pieces. */
  async function* streamChat(request, signal) {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({}, request, { stream: true })), signal,
    });
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { message = (await response.json()).error.message; } catch (err) { /* keep the status */ }
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") return;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) yield delta.content;
        }
      }
    }
  }

  /** The runs the server offers (GET /api/runs). */
  async function runs() {
    return (await getJSON("/api/runs")).runs;
  }

  function formatCount(n) {
    if (n === null || n === undefined) return "?";
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
    return String(n);
  }

  function showError(box, err) {
    box.textContent = err ? String(err.message || err) : "";
    box.hidden = !err;
  }

  return { el, getJSON, postJSON, streamChat, runs, formatCount, showError };
})();
