// Aggregate decode speed of phi-server with N concurrent streams, and the time to first token of a
// new request while 3 streams run. Plain fetch + SSE (no packages). Used by scripts/bench-server.sh:
//   node scripts/bench_server.mjs BASE_URL N TOKENS        -> one line of figures
//   node scripts/bench_server.mjs BASE_URL ttft TOKENS     -> TTFT with 3 streams running
const [base, mode, tokArg] = process.argv.slice(2);
const tokens = Number(tokArg || 64);

async function stream(prompt, maxTokens) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true }),
  });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let first = null, n = 0, buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.choices?.[0]?.text !== undefined && j.choices[0].finish_reason === null) { if (first === null) first = performance.now(); }
      if (j.usage) n = j.usage.completion_tokens;
    }
  }
  return { t0, first, end: performance.now() };
}

async function run(prompt, maxTokens) {
  // usage comes in the last chunk only with include_usage: ask for it
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true,
      stream_options: { include_usage: true } }),
  });
  const text = await res.text();
  const end = performance.now();
  const m = /"completion_tokens":(\d+)/.exec(text);
  return { t0, end, n: m ? Number(m[1]) : 0 };
}

const prompts = ["The capital of France is", "Once upon a time", "In the beginning", "The quick brown fox",
  "A long time ago", "It was a dark night", "The theory of", "My favourite food is"];
await run("Hello", 4); // warm-up
if (mode === "ttft") {
  const long = "word ".repeat(120);
  const bg = [0, 1, 2].map((i) => stream(prompts[i], tokens * 4));
  await new Promise((r) => setTimeout(r, 3000));
  const s = await stream(long, 8);
  await Promise.all(bg);
  console.log(`ttft_with_3_streams_ms ${(s.first - s.t0).toFixed(0)} (a ~120-token prompt)`);
} else {
  const n = Number(mode);
  const t0 = performance.now();
  // PROMPT_FILE: every stream gets that prompt (e.g. an input-grounded task for --lookup)
  const fixed = process.env.PROMPT_FILE ? (await import("fs")).readFileSync(process.env.PROMPT_FILE, "utf8") : null;
  const r = await Promise.all(Array.from({ length: n }, (_, i) => run(fixed ?? prompts[i % prompts.length], tokens)));
  const wall = (performance.now() - t0) / 1000, total = r.reduce((a, x) => a + x.n, 0);
  console.log(`streams ${n} tokens ${total} wall_s ${wall.toFixed(2)} aggregate_tok_s ${(total / wall).toFixed(2)} ` +
    `per_stream_tok_s ${(total / wall / n).toFixed(2)}`);
}
