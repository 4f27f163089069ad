// Drives a running phi-server with the official OpenAI client (and raw sockets for malformed
// requests); prints PASS/FAIL lines for tests/run.sh. Run by tests/server.sh, which starts the
// server and computes the expected texts with the phi CLI:
//   node tests/server/client.mjs MODE   (MODE: main | auth | busy | lora | lora-init | lookup)
// Env: PHI_BASE (http://127.0.0.1:PORT/v1), PHI_MODEL_ID, and for main: WANT_CHAT (greedy
// `phi --chat --system "Be brief." -p "Who is the LORD?" -n 12`), WANT_CHAT_PROMPT_TOKENS,
// WANT_COMPL (greedy `phi -p "And God said" -n 10`), COMPL_IDS (the ids phi -p evaluates for it).
import OpenAI from "openai";
import net from "net";

const base = process.env.PHI_BASE;
const url = new URL(base);
let failed = 0;
const pass = (n, d = "") => console.log(`PASS ${n}${d ? ": " + d : ""}`);
const fail = (n, d = "") => { failed++; console.log(`FAIL ${n}${d ? ": " + d : ""}`); };
const check = (c, n, d) => (c ? pass(n, d) : fail(n, d));
const show = (s) => JSON.stringify(s).slice(0, 160);

const client = new OpenAI({ baseURL: base, apiKey: process.env.PHI_KEY || "none", maxRetries: 0, timeout: 60000 });
const chatMsgs = [{ role: "system", content: "Be brief." }, { role: "user", content: "Who is the LORD?" }];

async function streamText(params, onChunk) {
  const s = await client.chat.completions.create({ ...params, stream: true });
  let text = "", finish = null, usage = null, first = null, n = 0;
  for await (const ch of s) {
    if (!first) first = ch;
    if (ch.usage) usage = ch.usage;
    const c = ch.choices[0];
    if (c) {
      if (c.delta?.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (onChunk) onChunk(ch, n++);
  }
  return { text, finish, usage, first };
}

// Raw HTTP over a socket: resolves {status, body} (status 0 if the server closed without a reply).
function raw(bytes, { closeAfterWrite = false, timeoutMs = 10000, keepReading = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(Number(url.port), url.hostname);
    let data = Buffer.alloc(0), resolved = false;
    const done = () => {
      const s = data.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(s);
      const body = s.split("\r\n\r\n").slice(1).join("\r\n\r\n");
      resolve({ status: m ? Number(m[1]) : 0, body, head: s.split("\r\n\r\n")[0] });
    };
    sock.setTimeout(timeoutMs, () => { sock.destroy(); });
    let finished = false;
    sock.on("data", (d) => {
      data = Buffer.concat([data, d]);
      // a complete response with a Content-Length: done (the connection may stay open)
      const s = data.toString("latin1"), e = s.indexOf("\r\n\r\n"), m = /content-length: *(\d+)/i.exec(s.slice(0, e));
      if (!keepReading && !finished && e >= 0 && m && data.length >= e + 4 + Number(m[1])) {
        finished = true;
        sock.destroy();
      }
    });
    sock.on("close", () => { if (!resolved) { resolved = true; done(); } });
    sock.on("error", () => {});
    sock.on("connect", () => {
      sock.write(bytes);
      if (closeAfterWrite) sock.end();
    });
  });
}

function isJsonError(body) {
  try { const j = JSON.parse(body); return typeof j.error?.message === "string" && typeof j.error?.type === "string"; }
  catch { return false; }
}

async function main() {
  const wantChat = process.env.WANT_CHAT, wantCompl = process.env.WANT_COMPL;
  const complIds = process.env.COMPL_IDS.split(",").map(Number);

  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === process.env.PHI_MODEL_ID && models.data[0].object === "model",
    "models_list", show(models.data));

  // non-streaming chat at temperature 0 = phi --chat's greedy text
  const r = await client.chat.completions.create({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0 });
  const m0 = r.choices[0];
  check(m0.message.content === wantChat && m0.message.role === "assistant", "chat_greedy_equals_cli",
    `${show(m0.message.content)} vs ${show(wantChat)}`);
  check(r.object === "chat.completion" && /^chatcmpl-/.test(r.id) && Number.isInteger(r.created) && m0.index === 0 &&
    m0.finish_reason === "length", "chat_schema", `object ${r.object} id ${r.id} finish ${m0.finish_reason}`);
  check(r.usage.completion_tokens === 12 && r.usage.prompt_tokens === Number(process.env.WANT_CHAT_PROMPT_TOKENS) &&
    r.usage.total_tokens === r.usage.prompt_tokens + 12, "chat_usage", show(r.usage));

  // streaming: the same text in chunks, role first, finish_reason last, usage chunk
  const st = await streamText({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0,
    stream_options: { include_usage: true } });
  check(st.text === wantChat && st.finish === "length" && st.first.choices[0].delta.role === "assistant" &&
    st.first.object === "chat.completion.chunk", "chat_stream_equals_cli", `${show(st.text)} finish ${st.finish}`);
  check(st.usage && st.usage.completion_tokens === 12 && st.usage.prompt_tokens === r.usage.prompt_tokens,
    "chat_stream_usage", show(st.usage));

  // completions: prompt text and the same prompt as token ids
  const c1 = await client.completions.create({ model: "x", prompt: "And God said", max_tokens: 10, temperature: 0 });
  check(c1.choices[0].text === wantCompl && c1.object === "text_completion" && c1.choices[0].finish_reason === "length" &&
    c1.usage.prompt_tokens === complIds.length && c1.usage.completion_tokens === 10, "completion_text_equals_cli",
    `${show(c1.choices[0].text)} vs ${show(wantCompl)} usage ${show(c1.usage)}`);
  const c2 = await client.completions.create({ model: "x", prompt: complIds, max_tokens: 10, temperature: 0 });
  check(c2.choices[0].text === wantCompl && c2.usage.prompt_tokens === complIds.length, "completion_token_ids",
    show(c2.choices[0].text));
  let ctext = "";
  const cs = await client.completions.create({ model: "x", prompt: "And God said", max_tokens: 10, temperature: 0, stream: true });
  let cfin = null;
  for await (const ch of cs) { ctext += ch.choices[0]?.text || ""; cfin = ch.choices[0]?.finish_reason || cfin; }
  check(ctext === wantCompl && cfin === "length", "completion_stream", show(ctext));

  // stop strings: the text ends before the first occurrence, finish_reason stop
  const words = wantChat.trim().split(/\s+/);
  const stopWord = words.length > 1 ? words[1] : words[0];
  const cut = wantChat.indexOf(stopWord);
  const rs = await client.chat.completions.create({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0,
    stop: [stopWord, "\u2603never"] });
  check(rs.choices[0].message.content === wantChat.slice(0, cut) && rs.choices[0].finish_reason === "stop",
    "stop_string", `stop ${show(stopWord)} -> ${show(rs.choices[0].message.content)}`);
  const ss = await streamText({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0, stop: stopWord });
  check(ss.text === wantChat.slice(0, cut) && ss.finish === "stop", "stop_string_stream", show(ss.text));

  // seeded sampling repeats itself
  const p = { model: "x", prompt: "And God said", max_tokens: 12, temperature: 1, top_k: 40, top_p: 0.9, seed: 42 };
  const [s1, s2] = [await client.completions.create(p), await client.completions.create(p)];
  check(s1.choices[0].text === s2.choices[0].text, "seed_repeats", show(s1.choices[0].text));

  // 8 concurrent streams (4 prompts twice) give the texts of sequential runs
  const prompts = ["Who is the LORD?", "What is love?", "Tell me of Moses.", "Where is Egypt?"];
  const seq = [];
  for (const q of prompts)
    seq.push((await client.chat.completions.create({ model: "x", messages: [{ role: "user", content: q }], max_tokens: 16,
      temperature: 0 })).choices[0].message.content);
  const t0 = Date.now();
  const par = await Promise.all([...prompts, ...prompts].map((q) =>
    streamText({ model: "x", messages: [{ role: "user", content: q }], max_tokens: 16, temperature: 0 })));
  const bad = par.map((x, i) => (x.text === seq[i % 4] ? null : `${i}: ${show(x.text)} vs ${show(seq[i % 4])}`)).filter(Boolean);
  check(bad.length === 0, "concurrent_8_streams_equal_sequential", bad.length ? bad.join("; ") : `8 streams in ${Date.now() - t0} ms`);

  // prompt cache: the next turn of a conversation evaluates only its new tokens, and its reply is
  // the CLI's second reply in `phi -i` (which re-renders the conversation the same way)
  const [turn1, turn2] = [process.env.WANT_TURN1, process.env.WANT_TURN2];
  const conv = [{ role: "user", content: "Who is the LORD?" }];
  const a1 = await client.chat.completions.create({ model: "x", messages: conv, max_tokens: 8, temperature: 0 });
  const a2 = await client.chat.completions.create({ model: "x", max_tokens: 8, temperature: 0,
    messages: [...conv, { role: "assistant", content: a1.choices[0].message.content }, { role: "user", content: "And Moses?" }] });
  const cached = a2.usage.prompt_tokens_details?.cached_tokens;
  check(a1.choices[0].message.content === turn1 && a2.choices[0].message.content === turn2 && cached > 0 &&
    cached < a2.usage.prompt_tokens, "prompt_cache_next_turn",
    `turn 2 ${show(a2.choices[0].message.content)}: ${cached} of ${a2.usage.prompt_tokens} prompt tokens from the cache`);

  // a client that aborts mid-stream; the server goes on serving (its slot is freed: see server.sh)
  const ac = new AbortController();
  let got = 0, aborted = false;
  try {
    const s = await client.chat.completions.create({ model: "x", messages: chatMsgs, max_tokens: 100, temperature: 0,
      stream: true, ignore_eos: true }, { signal: ac.signal });
    for await (const ch of s) { if (++got === 3) ac.abort(); }
  } catch (e) { aborted = true; }
  aborted = aborted || (ac.signal.aborted && got < 100);
  const after = await client.chat.completions.create({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0 });
  check(aborted && after.choices[0].message.content === wantChat, "abort_mid_stream", `aborted after ${got} chunks, next request ok`);

  // malformed requests over raw sockets get a 4xx JSON error while a stream continues
  const running = streamText({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0 });
  const post = (path, body, extra = "") =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  // invalid UTF-8 inside a JSON string
  const ub = Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  const cases = [
    ["garbage_request_line", "HELLO\r\n\r\n", 400],
    ["bad_version", "GET /health HTTP/9.9\r\n\r\n", 505],
    ["bad_json", post("/v1/chat/completions", "{\"messages\": [", ""), 400],
    ["not_object", post("/v1/chat/completions", "[1,2]"), 400],
    ["wrong_type", post("/v1/chat/completions", JSON.stringify({ messages: chatMsgs, max_tokens: "ten" })), 400],
    ["unknown_role", post("/v1/chat/completions", JSON.stringify({ messages: [{ role: "wizard", content: "hi" }] })), 400],
    ["bad_temperature", post("/v1/chat/completions", JSON.stringify({ messages: chatMsgs, temperature: 7 })), 400],
    ["n_2", post("/v1/chat/completions", JSON.stringify({ messages: chatMsgs, n: 2 })), 400],
    ["invalid_utf8", Buffer.concat([Buffer.from(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${ub.length}\r\n\r\n`), ub]), 400],
    ["token_id_out_of_vocab", post("/v1/completions", JSON.stringify({ prompt: [1, 99999999] })), 400],
    ["context_exceeded", post("/v1/completions", JSON.stringify({ prompt: "And God said", max_tokens: 100000 })), 400],
    ["unknown_endpoint", "GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404],
    ["wrong_method", "GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405],
    ["chunked_body", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411],
    ["body_too_large", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413],
    ["too_many_headers", "GET /health HTTP/1.1\r\n" + "X-A: 1\r\n".repeat(100) + "\r\n", 431],
    ["header_line_too_long", "GET /health HTTP/1.1\r\nX-A: " + "a".repeat(20000) + "\r\n\r\n", 431],
    ["bad_content_length", "POST /v1/completions HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400],
  ];
  for (const [name, bytes, want] of cases) {
    const res = await raw(bytes);
    check(res.status === want && isJsonError(res.body), `malformed_${name}`, `${res.status} ${res.body.slice(0, 120)}`);
  }
  const trunc = await raw("POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\":", { closeAfterWrite: true });
  check(trunc.status === 0 || trunc.status === 400 || trunc.status === 408, "malformed_truncated_body", `status ${trunc.status}`);
  const st2 = await running;
  check(st2.text === wantChat, "stream_survives_malformed", show(st2.text));
  const h = await raw("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  check(h.status === 200 && JSON.parse(h.body).status === "ok", "health_after_malformed", h.body);

  // keep-alive: two requests on one connection
  const two = await raw("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    { keepReading: true });
  check((two.body.match(/"ok"/g) || []).length === 2, "keep_alive_pipelined", two.body.replace(/\r\n/g, " ").slice(0, 120));
}

async function auth() {
  const good = new OpenAI({ baseURL: base, apiKey: "sekret", maxRetries: 0 });
  const bad = new OpenAI({ baseURL: base, apiKey: "wrong", maxRetries: 0 });
  const r = await good.completions.create({ model: "x", prompt: "And", max_tokens: 2, temperature: 0 });
  check(r.choices.length === 1, "api_key_accepted", show(r.choices[0].text));
  try {
    await bad.completions.create({ model: "x", prompt: "And", max_tokens: 2 });
    fail("api_key_wrong_401", "accepted");
  } catch (e) {
    check(e.status === 401 && e.error?.type === "authentication_error", "api_key_wrong_401", `${e.status} ${e.message}`);
  }
  const none = await raw("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
  check(none.status === 401 && isJsonError(none.body), "api_key_missing_401", none.body);
  const h = await raw("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  check(h.status === 200, "api_key_health_open", h.body);
}

async function busy() {
  // one slot, a queue of one: of four long requests at once, at least one gets 503
  const reqs = [0, 1, 2, 3].map(() => client.completions.create({ model: "x", prompt: "And", max_tokens: 400,
    temperature: 0, ignore_eos: true }).then(() => 200, (e) => e.status));
  const st = await Promise.all(reqs);
  check(st.filter((s) => s === 503).length >= 1 && st.filter((s) => s === 200).length >= 2, "queue_full_503", st.join(","));
}

// LoRA (tests/server.sh starts the server with --lora ADAPTER, -np 4): WANT_CHAT is the base's
// greedy text, WANT_LORA `phi --lora ADAPTER`'s and WANT_LORA05 `phi --lora-scaled ADAPTER 0.5`'s
// for the same messages; ADAPTER is the path GET /lora-adapters must list.
const root = base.replace(/\/v1\/?$/, "");
const chatWith = async (extra) =>
  (await client.chat.completions.create({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0, ...extra }));
const textWith = async (extra) => (await chatWith(extra)).choices[0].message.content;
async function loraErr(name, lora) {
  try {
    await chatWith({ lora });
    fail(name, "accepted");
  } catch (e) {
    check(e.status === 400 && e.error?.param === "lora" && typeof e.error?.message === "string", name,
      `${e.status} ${e.error?.message}`);
  }
}
async function adaptersPost(body) {
  const r = await fetch(`${root}/lora-adapters`, { method: "POST", body, headers: { "Content-Type": "application/json" } });
  return { status: r.status, body: await r.text() };
}
const adaptersGet = async () => (await fetch(`${root}/lora-adapters`)).json();

async function lora() {
  const want = process.env.WANT_CHAT, wantL = process.env.WANT_LORA, wantH = process.env.WANT_LORA05;
  check(want && wantL && wantH && want !== wantL && wantL !== wantH, "lora_expected_texts_differ",
    show([want, wantL, wantH]));
  const list = await adaptersGet();
  check(list.length === 1 && list[0].id === 0 && list[0].path === process.env.ADAPTER && list[0].scale === 1,
    "lora_adapters_get", show(list));
  check((await textWith({})) === wantL, "lora_default_applied", "no \"lora\" field: every adapter at its scale");
  check((await textWith({ lora: [{ id: 0, scale: 1 }] })) === wantL, "lora_request_scale1", wantL);
  check((await textWith({ lora: [{ id: 0, scale: 0.5 }] })) === wantH, "lora_request_scale0.5", wantH);
  check((await textWith({ lora: [{ id: 0, scale: 0 }] })) === want, "lora_request_scale0_is_base", want);
  check((await textWith({ lora: [] })) === want, "lora_request_unlisted_is_0", "\"lora\": [] is the base");
  const st = await streamText({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0, lora: [{ id: 0, scale: 1 }] });
  check(st.text === wantL, "lora_request_streamed", show(st.text));
  // 8 at once on 4 slots: base, scale 1 and scale 0.5 interleaved, half of them streamed
  const kinds = [[], [{ id: 0, scale: 1 }], [{ id: 0, scale: 0.5 }]], wants = [want, wantL, wantH];
  const runs = [...Array(8).keys()].map((i) => (i % 2
    ? streamText({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0, lora: kinds[i % 3] }).then((s) => s.text)
    : textWith({ lora: kinds[i % 3] })));
  const got = await Promise.all(runs);
  const bad = got.map((t, i) => (t === wants[i % 3] ? -1 : i)).filter((i) => i >= 0);
  check(bad.length === 0, "lora_concurrent_mixed", bad.length ? `wrong: ${bad.map((i) => `#${i} ${show(got[i])}`).join(" ")}` : "8 requests, 3 adapter sets");
  // errors: 400 with param "lora"
  await loraErr("lora_bad_unknown_id", [{ id: 1, scale: 1 }]);
  await loraErr("lora_bad_scale_string", [{ id: 0, scale: "1" }]);
  await loraErr("lora_bad_scale_missing", [{ id: 0 }]);
  await loraErr("lora_bad_negative_id", [{ id: -1, scale: 1 }]);
  await loraErr("lora_bad_fraction_id", [{ id: 0.5, scale: 1 }]);
  await loraErr("lora_bad_not_array", { id: 0, scale: 1 });
  await loraErr("lora_bad_item", [0]);
  // POST /lora-adapters: global scales (adapters not named: 0)
  let p = await adaptersPost(JSON.stringify([{ id: 0, scale: 0.5 }]));
  check(p.status === 200 && JSON.parse(p.body).success === true && (await adaptersGet())[0].scale === 0.5,
    "lora_adapters_post", p.body);
  check((await textWith({})) === wantH, "lora_global_scale_used", wantH);
  p = await adaptersPost("[]");
  check(p.status === 200 && (await adaptersGet())[0].scale === 0 && (await textWith({})) === want, "lora_adapters_post_empty",
    "unlisted: 0, the base");
  for (const [name, body] of [["not_json", "[{"], ["object", "{\"id\":0}"], ["unknown_id", "[{\"id\":3,\"scale\":1}]"],
    ["bad_scale", "[{\"id\":0,\"scale\":null}]"]]) {
    p = await adaptersPost(body);
    check(p.status === 400 && isJsonError(p.body), `lora_adapters_post_${name}`, `${p.status} ${p.body.slice(0, 100)}`);
  }
  check((await adaptersGet())[0].scale === 0, "lora_adapters_post_bad_keeps", "a refused POST changes nothing");
}

// --lora ADAPTER --lora-init-without-apply -np 1: the base by default; one slot, so the KV reuse
// across adapter sets shows in usage.prompt_tokens_details.cached_tokens.
async function loraInit() {
  const want = process.env.WANT_CHAT, wantL = process.env.WANT_LORA;
  const list = await adaptersGet();
  check(list.length === 1 && list[0].scale === 0, "lora_init_without_apply_scale0", show(list));
  const cached = (r) => r.usage?.prompt_tokens_details?.cached_tokens;
  const a = await chatWith({}), b = await chatWith({});
  check(a.choices[0].message.content === want && b.choices[0].message.content === want, "lora_init_without_apply_base", want);
  check(cached(b) > 0, "lora_same_set_reuses_kv", `cached ${cached(b)} of ${b.usage?.prompt_tokens}`);
  const c = await chatWith({ lora: [{ id: 0, scale: 1 }] });
  check(c.choices[0].message.content === wantL && cached(c) === 0, "lora_other_set_no_kv_reuse",
    `text ${show(c.choices[0].message.content)}, cached ${cached(c)}`);
  await adaptersPost(JSON.stringify([{ id: 0, scale: 1 }]));
  const d = await chatWith({});
  check(d.choices[0].message.content === wantL && cached(d) > 0, "lora_global_same_set_reuses_kv",
    `cached ${cached(d)}: the global scales equal the last request's`);
  const e = await chatWith({ lora: [] });
  check(e.choices[0].message.content === want && cached(e) === 0, "lora_back_to_base_no_kv_reuse", `cached ${cached(e)}`);
}

// --lookup, -np 4: greedy completions that copy from their prompt, four at once (two streamed),
// each the CLI's plain greedy text (WANT_LOOKUP for LOOKUP_PROMPT, WANT_LOOKUP2 for "Wisdom is"),
// and a chat reply; the drafts' use shows in the server's log (tests/server.sh checks it).
async function lookup() {
  const prompt = process.env.LOOKUP_PROMPT, want = process.env.WANT_LOOKUP, want2 = process.env.WANT_LOOKUP2;
  const one = async (p, stream) => {
    const params = { model: "x", prompt: p, max_tokens: 60, temperature: 0, ignore_eos: true };
    if (!stream) return (await client.completions.create(params)).choices[0].text;
    let text = "";
    for await (const ch of await client.completions.create({ ...params, stream: true })) text += ch.choices[0]?.text ?? "";
    return text;
  };
  const got = await Promise.all([one(prompt, false), one(prompt, true), one("Wisdom is", false), one(prompt, true)]);
  check(got[0] === want && got[1] === want && got[3] === want, "lookup_copy_equals_cli",
    `${[0, 1, 3].filter((i) => got[i] === want).length} of 3 equal ${show(want)}`);
  check(got[2] === want2, "lookup_fresh_equals_cli", `${show(got[2])} vs ${show(want2)}`);
  // the same prompt again: a slot whose last reply had drafts rejected serves it from its cache
  const again = await client.completions.create({ model: "x", prompt, max_tokens: 60, temperature: 0, ignore_eos: true });
  const cached = again.usage?.prompt_tokens_details?.cached_tokens;
  check(again.choices[0].text === want && cached === again.usage.prompt_tokens - 1, "lookup_slot_reuse",
    `cached ${cached} of ${again.usage?.prompt_tokens}, text equal: ${again.choices[0].text === want}`);
  const r = await client.chat.completions.create({ model: "x", messages: chatMsgs, max_tokens: 12, temperature: 0 });
  check(r.choices[0].message.content === process.env.WANT_CHAT, "lookup_chat_equals_cli", show(r.choices[0].message.content));
}

const mode = process.argv[2] || "main";
try {
  await { main, auth, busy, lora, "lora-init": loraInit, lookup }[mode]();
} catch (e) {
  fail(`client_${mode}`, `${e.status || ""} ${e.message}`);
}
process.exit(failed ? 1 : 0);
