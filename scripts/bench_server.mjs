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
  // the arrival time of every text chunk (one per token: no stop strings here)
  const reader = res.body.getReader(), dec = new TextDecoder(), times = [];
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const s = dec.decode(value, { stream: true }), now = performance.now();
    for (const m of s.matchAll(/"text":"[^"]/g)) times.push(now); // non-empty: one token each without --lookup
    text += s;
  }
  const end = performance.now();
  const m = /"completion_tokens":(\d+)/.exec(text);
  return { t0, end, n: m ? Number(m[1]) : 0, times };
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
  // PROMPT_FILE: every stream gets that prompt (e.g. an input-grounded task for --lookup)
  const fixed = process.env.PROMPT_FILE ? (await import("fs")).readFileSync(process.env.PROMPT_FILE, "utf8") : null;
  const once = async (n) => {
    const t0 = performance.now();
    const r = await Promise.all(Array.from({ length: n }, (_, i) => run(fixed ?? prompts[i % prompts.length], tokens)));
    const wall = (performance.now() - t0) / 1000, total = r.reduce((a, x) => a + x.n, 0);
    // steady decoding: the text chunks that arrived while all n streams were generating (from
    // the last stream's first token to the first stream's last), per second: no prompt, no
    // stagger; a chunk is one token, except with --lookup, where a step can send several
    const from = Math.max(...r.map((x) => x.times[0] ?? Infinity)), to = Math.min(...r.map((x) => x.times.at(-1) ?? 0));
    const inside = r.reduce((a, x) => a + x.times.filter((t) => t > from && t <= to).length, 0);
    const steady = to > from ? (inside / (to - from)) * 1000 : 0;
    console.log(`streams ${n} tokens ${total} wall_s ${wall.toFixed(2)} aggregate_tok_s ${(total / wall).toFixed(2)} ` +
      `per_stream_tok_s ${(total / wall / n).toFixed(2)} steady_tok_s ${steady.toFixed(2)}`);
    return { agg: total / wall, steady };
  };
  if (mode.startsWith("alt:")) {
    // alt:A,B[:REPS]: A streams, then B, REPS times on the same server (the machine's drift hits
    // both alike), then the median of each and the ratio of the medians
    const [, ab, reps] = mode.split(":"), [a, b] = ab.split(",").map(Number), ra = [], rb = [];
    for (let i = 0; i < Number(reps || 3); i++) ra.push(await once(a)), rb.push(await once(b));
    const med = (v) => [...v].sort((x, y) => x - y)[v.length >> 1];
    for (const k of ["agg", "steady"]) {
      const va = ra.map((x) => x[k]), vb = rb.map((x) => x[k]);
      console.log(`median ${k} streams ${a} ${med(va).toFixed(2)} streams ${b} ${med(vb).toFixed(2)} ratio ` +
        `${(med(vb) / med(va)).toFixed(2)} (per pair: ${vb.map((x, i) => (x / va[i]).toFixed(2)).join(" ")})`);
    }
  } else await once(Number(mode));
}
