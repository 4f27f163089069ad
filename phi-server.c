/* phi-server: an OpenAI-compatible HTTP server for phi models (argument parsing only; the server
 * is server/). Flags follow llama-server's spelling and meaning. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "model/model.h"
#include "model/lookup.h"
#include "server/server.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: phi-server -m MODEL [options]\n"
        "An OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions,\n"
        "GET /v1/models, GET /health. Flags follow llama-server's.\n"
        "  -m, --model FILE       the phi model file (required)\n"
        "  --host HOST            address to listen on (default 127.0.0.1: this machine only)\n"
        "  --port N               TCP port (default 8080; 0: any free port, printed at start)\n"
        "  -np, --parallel N      slots: requests generated at the same time, decoded together\n"
        "                         in one batched step (default 4)\n"
        "  -c, --ctx-size N       total context, split evenly among the slots as llama-server does\n"
        "                         (default: the model's maximum, at most 4096)\n"
        "  -t, --threads N        threads of the one shared thread pool (default: physical cores)\n"
        "  -ctk, --cache-type-k T KV cache type of the keys: f16 (default), f32 or q8_0 (8.5 bits:\n"
        "                         about half of f16's memory, so twice the context per byte)\n"
        "  -ctv, --cache-type-v T the same for the values (no flash attention needed for q8_0)\n"
        "  --api-key KEY          require 'Authorization: Bearer KEY' (not for /health)\n"
        "  -a, --alias NAME       the model id in responses and /v1/models (default: file name)\n"
        "  -to, --timeout N       seconds to read one request and for each write (default 60;\n"
        "                         llama-server's is 600)\n"
        "  --queue N              requests waiting for a slot before 503 (default 64)\n"
        "  --conn N               open connections before 503 (default 256)\n"
        "  --body-limit BYTES     largest request body (default 8388608; larger: 413)\n"
        "  --mmap                 map the model file instead of copying it into memory\n"
        "  --lora FILE|DIR        preload a LoRA adapter (PEFT folder or GGUF adapter file) at scale 1;\n"
        "                         repeatable: ids 0, 1, ... in order (GET /lora-adapters lists them)\n"
        "  --lora-scaled FILE|DIR S  the same at scale S\n"
        "  --lora-init-without-apply  preload the adapters at scale 0 (set them with POST\n"
        "                         /lora-adapters or a request's \"lora\": [{\"id\":0,\"scale\":1}])\n"
        "                         Without it every request that names no \"lora\" runs with all the\n"
        "                         adapters at their scales, as llama-server does.\n"
        "  --lookup               prompt-lookup speculative decoding for greedy requests (temperature\n"
        "                         0): the tokens that followed an earlier occurrence of a slot's last\n"
        "                         1-4 tokens are checked in its decode step, using the rows the other\n"
        "                         slots leave in a pass of 8; same output, more tokens per step when\n"
        "                         the reply copies from the prompt. Off for K-quant weights and\n"
        "                         adapters (their batches are not bit-exact); the start log says which\n"
        "  --draft-max N, --draft N  drafts per pass with --lookup, 1..7 (default 5; implies --lookup;\n"
        "                         llama-server's flag)\n"
        "  -h, --help             this text\n"
        "SIGINT/SIGTERM: requests in flight get up to 10 s to finish, then the server exits 0.\n");
}

static int parse_num(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "phi-server: %s wants an integer in %lld..%lld, got '%s'\n", flag, lo, hi, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    ServerOptions o = {.host = "127.0.0.1", .port = 8080, .n_parallel = 4, .timeout_s = 60, .queue = 64,
                       .max_conn = 256, .max_body = 8 << 20};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
#define IS(s) (!strcmp(a, s))
#define NUM(lo, hi, field) do { if (parse_num(a, v, lo, hi, &x)) return 1; field = x; i++; } while (0)
#define STR(field) do { if (!v) { fprintf(stderr, "phi-server: %s wants a value\n", a); return 1; } field = v; i++; } while (0)
        if (IS("-h") || IS("--help")) { usage(stdout); return 0; }
        else if (IS("-m") || IS("--model")) STR(o.model_path);
        else if (IS("--host")) STR(o.host);
        else if (IS("-a") || IS("--alias")) STR(o.alias);
        else if (IS("--api-key")) STR(o.api_key);
        else if (IS("--port")) NUM(0, 65535, o.port);
        else if (IS("-np") || IS("--parallel")) NUM(1, 256, o.n_parallel);
        else if (IS("-c") || IS("--ctx-size")) NUM(0, INT_MAX, o.n_ctx);
        else if (IS("-t") || IS("--threads")) NUM(1, 1024, o.n_threads);
        else if (IS("-to") || IS("--timeout")) NUM(1, 86400, o.timeout_s);
        else if (IS("-ctk") || IS("--cache-type-k") || IS("-ctv") || IS("--cache-type-v")) {
            int t = v ? kv_type_parse(v) : -1;
            if (t < 0) {
                fprintf(stderr, "phi-server: %s wants f32, f16 or q8_0, got '%s'\n", a, v ? v : "");
                return 1;
            }
            if (IS("-ctk") || IS("--cache-type-k")) o.cache_type_k = t;
            else o.cache_type_v = t;
            i++;
        }
        else if (IS("--queue")) NUM(1, 65536, o.queue);
        else if (IS("--conn")) NUM(1, 65536, o.max_conn);
        else if (IS("--body-limit")) NUM(1024, 1LL << 32, o.max_body);
        else if (IS("--mmap")) o.mmap = 1;
        else if (IS("--lookup")) { if (!o.draft_max) o.draft_max = LOOKUP_DRAFT_DEFAULT; }
        else if (IS("--draft-max") || IS("--draft")) NUM(1, LOOKUP_DRAFT_MAX, o.draft_max);
        else if (IS("--lora-init-without-apply")) o.lora_init_without_apply = 1;
        else if (IS("--lora") || IS("--lora-scaled")) {
            int scaled = IS("--lora-scaled");
            const char *sv = scaled && i + 2 < argc ? argv[i + 2] : NULL;
            char *end = NULL;
            float sc = sv ? strtof(sv, &end) : 1;
            if (!v || (scaled && (!sv || end == sv || *end || !isfinite(sc)))) {
                fprintf(stderr, "phi-server: %s wants %s\n", a, scaled ? "a path and a finite scale" : "a path");
                return 1;
            }
            if (o.n_lora == 64) {
                fprintf(stderr, "phi-server: at most 64 LoRA adapters\n");
                return 1;
            }
            o.lora_path[o.n_lora] = v;
            o.lora_scale[o.n_lora++] = sc;
            i += scaled ? 2 : 1;
        }
        else {
            fprintf(stderr, "phi-server: unknown option '%s' (see --help)\n", a);
            return 1;
        }
    }
    if (!o.model_path) {
        fprintf(stderr, "phi-server: -m MODEL is required (see --help)\n");
        return 1;
    }
    if (o.api_key && !*o.api_key) {
        fprintf(stderr, "phi-server: --api-key is empty\n");
        return 1;
    }
    if (!o.n_threads) o.n_threads = cpu_physical_cores();
    return server_run(&o);
}
