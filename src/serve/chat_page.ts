// The web chat page served at `/`: plain HTML + JS (no build step), kept as a string module so that both
// `node --import tsx` and the compiled dist/ serve the same page. It talks to /v1/chat/completions with streaming.
export const CHAT_PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fathom chat</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --line: #dde1e6; --text: #1d2330; --muted: #687083; --accent: #2456d3; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--text); display: flex; height: 100vh; }
  aside { width: 320px; padding: 16px; border-right: 1px solid var(--line); background: var(--card); overflow: auto; }
  main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  label { display: block; font-size: 13px; color: var(--muted); margin: 12px 0 4px; }
  textarea, input { width: 100%; font: inherit; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; color: inherit; }
  #system { height: 200px; resize: vertical; }
  #messages { flex: 1; overflow: auto; padding: 16px; }
  .msg { max-width: 760px; margin: 0 auto 12px; padding: 10px 14px; border-radius: 10px; white-space: pre-wrap; word-wrap: break-word; }
  .msg.user { background: #dfe8ff; margin-left: auto; margin-right: 0; max-width: 70%; }
  .msg.assistant { background: var(--card); border: 1px solid var(--line); }
  .msg.error { background: #fde8e8; border: 1px solid #f3b4b4; }
  .msg .note { color: var(--muted); font-size: 12px; display: block; margin-top: 6px; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid var(--line); background: var(--card); }
  #input { flex: 1; height: 60px; resize: none; }
  button { font: inherit; border: 0; border-radius: 6px; padding: 0 16px; cursor: pointer; background: var(--accent); color: #fff; }
  button:disabled { opacity: .45; cursor: default; }
  button.secondary { background: #e7eaef; color: var(--text); }
  .row { display: flex; gap: 8px; } .row > div { flex: 1; }
  #model { color: var(--muted); font-size: 13px; }
</style>
</head>
<body>
<aside>
  <h1>Fathom chat</h1>
  <div id="model">connecting…</div>
  <label for="system">System prompt</label>
  <textarea id="system">You are Ava, the customer-service assistant of Northwind Outdoor, an online shop for camping and hiking gear. Be warm, brief and helpful. Help customers with orders, shipping (3–5 business days, free over $50), returns (30 days, unused items) and product questions. Ask for the order number when you need it, never invent order details, and offer to hand over to a human agent when you cannot help.</textarea>
  <div class="row">
    <div><label for="temperature">Temperature</label><input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></div>
    <div><label for="max-tokens">Max tokens</label><input id="max-tokens" type="number" min="1" step="1" value="512"></div>
  </div>
  <label for="api-key">API key (if the server needs one)</label>
  <input id="api-key" type="password" autocomplete="off" placeholder="none">
  <p><button id="reset" class="secondary" type="button">New conversation</button></p>
</aside>
<main>
  <div id="messages"></div>
  <form id="form">
    <textarea id="input" placeholder="Type a message… (Enter sends, Shift+Enter for a new line)"></textarea>
    <button id="send" type="submit">Send</button>
    <button id="stop" type="button" class="secondary" disabled>Stop</button>
  </form>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const messagesEl = $("messages"), input = $("input"), sendBtn = $("send"), stopBtn = $("stop"), keyEl = $("api-key"), systemEl = $("system");
let history = [];        // {role, content} of the conversation so far (without the system prompt)
let controller = null;   // AbortController of the reply being streamed
let modelId = null;

keyEl.value = localStorage.getItem("fathom-api-key") || "";
keyEl.addEventListener("change", () => { localStorage.setItem("fathom-api-key", keyEl.value); loadModel(); });
const savedSystem = localStorage.getItem("fathom-system");
if (savedSystem !== null) systemEl.value = savedSystem;
systemEl.addEventListener("input", () => localStorage.setItem("fathom-system", systemEl.value));

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyEl.value) h.Authorization = "Bearer " + keyEl.value;
  return h;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    modelId = j.data[0].id;
    $("model").textContent = "model: " + modelId;
  } catch (e) {
    $("model").textContent = "cannot list models: " + e.message;
  }
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  messagesEl.appendChild(div);
  messagesEl.scrollTop = messagesEl.scrollHeight;
  return div;
}

function setBusy(busy) {
  sendBtn.disabled = busy;
  stopBtn.disabled = !busy;
}

async function send(text) {
  if (!modelId) await loadModel();
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const bubble = addMessage("assistant", "");
  bubble.dataset.state = "streaming";
  let reply = "";
  const messages = (systemEl.value.trim() ? [{ role: "system", content: systemEl.value }] : []).concat(history);
  controller = new AbortController();
  setBusy(true);
  let state = "done";
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({ model: modelId, messages, stream: true,
        temperature: Number($("temperature").value), max_tokens: Number($("max-tokens").value) }),
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error ? j.error.message : r.status + " " + r.statusText);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          const c = j.choices && j.choices[0];
          if (c && c.delta && c.delta.content) {
            reply += c.delta.content;
            bubble.textContent = reply;
            messagesEl.scrollTop = messagesEl.scrollHeight;
          }
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") state = "stopped";
    else { state = "error"; bubble.className = "msg assistant error"; bubble.textContent = reply + (reply ? "\n" : "") + "Error: " + e.message; }
  }
  if (state === "stopped") {
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = "(stopped)";
    bubble.appendChild(note);
  }
  bubble.dataset.state = state;
  if (reply) history.push({ role: "assistant", content: reply });
  else if (state !== "done") history.pop();
  controller = null;
  setBusy(false);
  input.focus();
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  send(text);
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
stopBtn.addEventListener("click", () => { if (controller) controller.abort(); });
$("reset").addEventListener("click", () => { if (controller) controller.abort(); history = []; messagesEl.textContent = ""; });
loadModel();
</script>
</body>
</html>
`;
