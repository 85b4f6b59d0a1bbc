// The chat page at `/` in a real browser: headless Chromium (Debian's `chromium`) driven by playwright-core. Load the
// page, edit the system prompt, send a message, watch the reply stream in, and stop a long reply with the Stop button.
// .ci/run installs Chromium; the test skips only where no Chromium exists at all.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { metric, startTiny, type TinyServed } from "./serve_helpers.js";

const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium"].find((p) => p && existsSync(p));

let s: TinyServed;
let browser: Browser;
let page: Page;
before(async () => {
  if (!CHROMIUM) return;
  // A bigger model than the other server tests' (~10M parameters), so that a long reply takes seconds and the Stop
  // button is clicked while it streams.
  s = await startTiny({ maxBatch: 2, config: { hidden_size: 384, intermediate_size: 1152, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 2 } });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  page = await browser.newPage();
});
after(async () => { await browser?.close(); await s?.close(); });

test("the chat page: edited system prompt, streamed reply, Stop button", { skip: CHROMIUM ? false : "no chromium found (CI installs it with apt-get)" }, async () => {
  const bodies: { messages: { role: string; content: string }[]; stream: boolean; max_tokens: number }[] = [];
  page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(JSON.parse(r.postData() ?? "{}")); });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));

  await page.goto(s.url + "/");
  await page.waitForFunction(() => document.getElementById("model")!.textContent === "model: tiny");
  assert.match(await page.inputValue("#system"), /customer-service assistant/);
  await page.fill("#system", "You are Max, the help desk of the tiny shop.");
  await page.fill("#temperature", "0");
  await page.fill("#max-tokens", "12");

  // Send: the reply streams into an assistant bubble, and the request carried the edited system prompt.
  const chunks: number[] = [];
  await page.exposeFunction("noteLength", (n: number) => { chunks.push(n); });
  await page.evaluate(() => {
    new MutationObserver(() => {
      const b = document.querySelector(".msg.assistant");
      if (b) (window as unknown as { noteLength(n: number): void }).noteLength((b.textContent ?? "").length);
    }).observe(document.getElementById("messages")!, { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#input", "where is my order?");
  await page.click("#send");
  await page.waitForSelector('.msg.assistant[data-state="done"]', { timeout: 30_000 });
  const reply = await page.textContent(".msg.assistant");
  assert.ok(reply && reply.length > 0, "a reply arrived");
  assert.equal(await page.textContent(".msg.user"), "where is my order?");
  assert.equal(bodies.length, 1);
  assert.equal(bodies[0].stream, true);
  assert.deepEqual(bodies[0].messages, [{ role: "system", content: "You are Max, the help desk of the tiny shop." }, { role: "user", content: "where is my order?" }]);
  assert.ok(new Set(chunks).size >= 2, `the text grew in steps (${chunks.join(",")})`);
  // The page shows what the API answers for the same request.
  const api = await (await fetch(`${s.url}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...bodies[0], stream: false }) })).json();
  assert.equal(reply, api.choices[0].message.content);

  // Stop: a long reply (EOS is banned below, and 600 tokens take seconds) is cut by the button.
  await page.fill("#max-tokens", "600");   // prompt + max_tokens must fit the context of 1024
  await page.fill("#temperature", "1");
  // (The random tiny model may end a reply at once with EOS: for this request, the test bans EOS and fixes the seed.)
  await page.route("**/v1/chat/completions", (route) => route.continue({ postData: JSON.stringify({ ...JSON.parse(route.request().postData()!), seed: 3, logit_bias: { [s.ids.eos]: -100 } }) }));
  await page.fill("#input", "tell me everything");
  await page.click("#send");
  await page.waitForFunction(() => (document.querySelectorAll(".msg.assistant")[1]?.textContent ?? "").length > 0);
  assert.equal(await page.isEnabled("#stop"), true);
  assert.equal(await page.isEnabled("#send"), false);
  await page.click("#stop");
  const state = await page.waitForFunction(() => { const b = document.querySelectorAll<HTMLElement>(".msg.assistant")[1]; return b.dataset.state !== "streaming" && b.dataset.state; });
  const final = await state.jsonValue();
  assert.equal(final, "stopped");
  assert.match((await page.textContent(".msg.assistant >> nth=1")) ?? "", /\(stopped\)$/);
  assert.equal(await page.isEnabled("#send"), true);
  assert.equal(await page.isEnabled("#stop"), false);
  // The server let go of the sequence.
  let active = 1;
  for (let i = 0; i < 100 && active > 0; i++) { await new Promise((r) => setTimeout(r, 20)); active = await metric(s.url, "fathom_active_sequences"); }
  assert.equal(active, 0);
  assert.deepEqual(errors, []);
});
