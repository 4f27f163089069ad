// bench_peer: times llama.cpp on a GGUF file the way `phi --bench` times phi, so that both run on
// the very same file on the same machine. llama.cpp comes as node-llama-cpp's prebuilt CPU
// binaries (scripts/bench-peer.sh installs them; ggml picks its best CPU variant at run time:
// zen4 / icelake / ... with AVX-512 VNNI where the CPU has it; weights are repacked at load as
// llama.cpp does by default). Figures:
//   ppN   prompt tokens/s: N tokens evaluated in one batch into an empty sequence
//   tgN   generation tokens/s: N single-token forward passes (as phi --bench: no sampling)
//   npK   aggregate generation tokens/s of K sequences decoding together (each TG tokens; the
//         K evaluations of a step go to llama.cpp as one batch, as llama-server -np K does)
//
//   node scripts/bench_peer.mjs MODEL.gguf THREADS PP TG REPS [PARALLEL=1,2,4,8]
import {getLlama} from "node-llama-cpp";

const [modelPath, threads = "2", pp = "128", tg = "32", reps = "3", par = ""] = process.argv.slice(2);
const T = +threads, PP = +pp, TG = +tg, R = +reps;
const llama = await getLlama({gpu: false, build: "never", maxThreads: T, logLevel: "error"});
const model = await llama.loadModel({modelPath, useMmap: true});
const ids = (n, s = 0) => Array.from({length: n}, (_, i) => 100 + ((i + 37 * s) * 7919) % 30000);
const stats = a => {
    const m = a.reduce((s, x) => s + x, 0) / a.length;
    const sd = Math.sqrt(a.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, a.length - 1));
    return `${m.toFixed(2).padStart(7)} ± ${sd.toFixed(2)}`;
};
const now = () => Number(process.hrtime.bigint()) / 1e9;
// n single-token forward passes after `first`, no sampling (what phi --bench times for tg: the
// forward pass only; sampling through node-llama-cpp's JS/native hops adds ~10 ms a token here)
async function generate(seq, first, n, s = 0) {
    const t = ids(n, s);
    await seq.evaluateWithoutGeneratingNewTokens([first]);
    for (let k = 1; k < n; k++) await seq.evaluateWithoutGeneratingNewTokens([t[k]]);
}
console.log(`llama.cpp via node-llama-cpp ${process.env.PEER_VERSION ?? ""} (ggml CPU), ${T} threads, ${modelPath}`);
{
    const ctx = await model.createContext({contextSize: Math.max(512, PP + TG + 8), batchSize: Math.max(512, PP),
                                           threads: {ideal: T, min: T}, sequences: 1});
    const ppr = [], tgr = [], seq = ctx.getSequence();
    for (let r = 0; r < R; r++) {
        await seq.clearHistory();
        let t0 = now();
        if (PP > 0) {
            await seq.evaluateWithoutGeneratingNewTokens(ids(PP));
            ppr.push(PP / (now() - t0));
        }
        t0 = now();
        await generate(seq, ids(1)[0], TG);
        tgr.push(TG / (now() - t0));
    }
    if (PP > 0) console.log(`pp${PP}  ${stats(ppr)} t/s`);
    console.log(`tg${TG}   ${stats(tgr)} t/s`);
    await ctx.dispose();
}
for (const K of par ? par.split(",").map(Number) : []) {
    // node-llama-cpp dispatches at once when every sequence has queued a token (else at the next
    // event-loop cycle), so the K single-token passes of a step go to llama_decode as one batch.
    const ctx = await model.createContext({contextSize: K * 512, batchSize: 512,
                                           threads: {ideal: T, min: T}, sequences: K});
    const rates = [], seqs = Array.from({length: K}, () => ctx.getSequence());
    for (let r = 0; r < R; r++) {
        await Promise.all(seqs.map(s => s.clearHistory()));
        const t0 = now();
        await Promise.all(seqs.map((s, i) => generate(s, ids(1, i)[0], TG, i)));
        rates.push(K * TG / (now() - t0));
    }
    console.log(`np${K} tg${TG} ${stats(rates)} t/s aggregate`);
    await ctx.dispose();
}
await model.dispose();
