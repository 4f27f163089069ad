/* The corrupt-input corpus, part 2 (tests/test_corrupt.c has the model, tokenizer and GGUF model
 * files): LoRA adapters and the server's HTTP requests, through the same case runner
 * (tests/corrupt_lib.h: rejected with one line, or accepted and usable; a crash, a hang of 20 s
 * or, under `make asan`, any out-of-bounds access fails the run).
 *
 *   PEFT adapter   ../shared/data/phi3-lora/adapter-r8 (adapter_config.json and
 *                  adapter_model.safetensors) for phi3-trained-tiny's hyperparameters: the config
 *                  JSON token by token, the safetensors header (length field, truncations, random
 *                  bytes, its JSON token by token with the data kept), NaN/inf in the data.
 *                  An accepted adapter must pass lora_adapter_check, hold only finite values and
 *                  join a LoRA set.
 *   GGUF adapter   a two-pair adapter for `quant --random tiny`'s shapes written here
 *                  (tests/gguf_write.h): truncation at every field boundary, every byte of the
 *                  header and directory flipped, crafted counts, lengths, dims, types, offsets.
 *   HTTP head      the fuzz seeds' requests (fuzz/http_seeds, written out here): truncation at
 *                  every byte, every byte flipped, crafted Content-Length values, over-long lines,
 *                  too many headers, chunked bodies, bad versions and methods. A parsed head must
 *                  be consistent (the checks of fuzz/fuzz_http.c); "needs more bytes" counts as
 *                  accepted (the server then waits, under its read timeout).
 *   OpenAI bodies  chat and completion request bodies and the /lora-adapters list, token by token. */
#include <math.h>
#include <sys/mman.h>

#include "base/json.h"
#include "convert/hf.h"
#include "convert/lora_load.h"
#include "convert/safetensors.h"
#include "model/lora.h"
#include "server/http.h"
#include "server/oai.h"
#include "tests/corrupt_lib.h"
#include "tests/gguf_write.h"
#include "tests/harness.h"

static PhiHParams g_hp; /* the model the adapters are for */

/* The unchanged input first: it must be accepted, or the corpus around it tests nothing. */
static void intact(Format *f, const uint8_t *buf, size_t n) {
    long before = f->accepted;
    run_case(f, buf, n, "intact");
    if (f->accepted == before) t_check(0, f->name, "the intact input was refused");
}

/* An accepted adapter keeps the parser's promises: it fits the model, its values are finite and a
 * LoRA set takes it. */
static int adapter_usable(LoraAdapter *ad, char *err, size_t errlen) {
    if (lora_adapter_check(ad, &g_hp, err, errlen)) abort();
    for (int i = 0; i < ad->n; i++) {
        const LoraPiece *p = &ad->p[i];
        for (long k = 0; k < (long)p->rank * p->cols; k++)
            if (!isfinite(p->a[k])) abort();
        for (long k = 0; k < (long)p->rank * p->rows; k++)
            if (!isfinite(p->bt[k])) abort();
    }
    LoraSet *set = lora_set_new(&g_hp);
    if (!set || lora_set_add(set, ad, 1.0f, err, errlen)) abort();
    lora_set_free(set);
    lora_adapter_free(ad);
    return 0;
}

/* ---- PEFT: [adapter_config.json][adapter_model.safetensors], the split at g_cfg_len ---- */

static size_t g_cfg_len;

static int parse_peft(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    size_t cl = g_cfg_len < n ? g_cfg_len : n;
    const uint8_t *st = buf + cl;
    size_t sn = n - cl;
    StFile f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    if (st_parse_header(st, sn, sn, &f, err, errlen)) return -1;
    int fd = memfd_create("adapter", 0);
    if (fd < 0 || write(fd, st, sn) != (ssize_t)sn) abort();
    f.fd = fd; /* st_close closes it */
    LoraAdapter *ad = lora_from_peft("adapter-r8", (const char *)buf, cl, &f, &g_hp, err, errlen);
    st_close(&f);
    return ad ? adapter_usable(ad, err, errlen) : -1;
}

static const uint8_t *g_st;
static size_t g_st_n;

/* a changed config text, the safetensors kept */
static size_t wrap_cfg(const char *text, size_t len, uint8_t **out, void *ctx) {
    (void)ctx;
    *out = malloc(len + g_st_n);
    if (!*out) abort();
    memcpy(*out, text, len);
    memcpy(*out + len, g_st, g_st_n);
    g_cfg_len = len;
    return len + g_st_n;
}

/* a changed safetensors header, the config and the data kept */
static const char *g_cfg;
static size_t g_st_hl;
static size_t wrap_sthead(const char *text, size_t len, uint8_t **out, void *ctx) {
    (void)ctx;
    size_t data = g_st_n - 8 - g_st_hl;
    *out = malloc(g_cfg_len + 8 + len + data);
    if (!*out) abort();
    memcpy(*out, g_cfg, g_cfg_len);
    wr_le(*out + g_cfg_len, len, 8);
    memcpy(*out + g_cfg_len + 8, text, len);
    memcpy(*out + g_cfg_len + 8 + len, g_st + 8 + g_st_hl, data);
    return g_cfg_len + 8 + len + data;
}

static void peft_corpus(Format *f, const char *cfg, size_t cl, uint8_t *st, size_t sn) {
    g_st = st, g_st_n = sn, g_cfg = cfg;
    uint8_t *whole;
    size_t n = wrap_cfg(cfg, cl, &whole, NULL);
    intact(f, whole, n);
    json_mutations(f, wrap_cfg, NULL, cfg, cl, 200);
    g_cfg_len = cl;
    uint64_t hl = rd_le(st, 8);
    if (hl > sn - 8) abort();
    g_st_hl = hl;
    for (size_t at = 1; at <= 8; at++) truncate_at(f, whole, n, cl + at, "safetensors header length");
    truncate_at(f, whole, n, cl + 8 + hl / 2, "inside the safetensors header");
    truncate_at(f, whole, n, cl + 8 + hl, "at the tensor data");
    truncate_at(f, whole, n, n - 1, "the last byte");
    uint64_t extra[] = {hl - 1, hl + 1, sn - 8, sn - 7};
    craft_field(f, whole, n, cl, 8, "safetensors header length", extra, 4);
    random_damage(f, whole, n, cl, cl + 8 + hl, 60, 11);
    json_mutations(f, wrap_sthead, NULL, (const char *)st + 8, hl, 200);
    /* non-finite values in the data (the adapter's tensors are F32 here) */
    static const uint32_t bad[] = {0x7fc00000u, 0x7f800000u, 0xff800000u};
    size_t data = cl + 8 + hl, offs[] = {data, data + (n - data) / 2 / 4 * 4, n - 4};
    char what[160];
    for (int i = 0; i < 3; i++)
        for (int v = 0; v < 3; v++) {
            uint8_t keep[4];
            memcpy(keep, whole + offs[i], 4);
            wr_le(whole + offs[i], bad[v], 4);
            snprintf(what, sizeof what, "data word at %zu = 0x%08x", offs[i], bad[v]);
            run_case(f, whole, n, what);
            memcpy(whole + offs[i], keep, 4);
        }
    free(whole);
}

/* ---- GGUF adapter for `quant --random tiny` (dim 64, 2 layers, 4 heads, 2 KV heads of 16,
 * hidden 132): blk.0.attn_qkv and blk.1.ffn_down, rank 2, F32 ---- */

typedef struct {
    size_t n_tensors, n_kv, key_len[4], val[4], name_len[4], n_dims[4], dim0[4], dim1[4], type[4], offset[4], data;
} AdPos;

static GwBuf gguf_adapter(AdPos *p) {
    GwBuf g = {0};
    gw_bytes(&g, "GGUF", 4);
    gw_u32(&g, 3);
    p->n_tensors = g.n, gw_u64(&g, 4);
    p->n_kv = g.n, gw_u64(&g, 4);
    static const char *keys[4] = {"general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"};
    static const char *vals[3] = {"phi3", "adapter", "lora"};
    for (int k = 0; k < 4; k++) {
        p->key_len[k] = g.n, gw_str(&g, keys[k]);
        gw_u32(&g, k < 3 ? 8 : 6);
        p->val[k] = g.n;
        if (k < 3) gw_str(&g, vals[k]);
        else gw_f32(&g, 4.0f);
    }
    /* (name, ne0, ne1): A is [in, r], B is [r, out] */
    static const struct { const char *name; int ne0, ne1; } t[4] = {
        {"blk.0.attn_qkv.weight.lora_a", 64, 2},  {"blk.0.attn_qkv.weight.lora_b", 2, 128},
        {"blk.1.ffn_down.weight.lora_a", 132, 2}, {"blk.1.ffn_down.weight.lora_b", 2, 64}};
    uint64_t off = 0;
    for (int i = 0; i < 4; i++) {
        p->name_len[i] = g.n, gw_str(&g, t[i].name);
        p->n_dims[i] = g.n, gw_u32(&g, 2);
        p->dim0[i] = g.n, gw_u64(&g, (uint64_t)t[i].ne0);
        p->dim1[i] = g.n, gw_u64(&g, (uint64_t)t[i].ne1);
        p->type[i] = g.n, gw_u32(&g, 0);
        p->offset[i] = g.n, gw_u64(&g, off);
        off += ((uint64_t)t[i].ne0 * t[i].ne1 * 4 + 31) / 32 * 32;
    }
    while (g.n % 32) gw_bytes(&g, "", 1);
    p->data = g.n;
    uint64_t r = 7;
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < t[i].ne0 * t[i].ne1; k++) gw_f32(&g, (rng_float01(&r) - 0.5f) * 0.1f);
        while (g.n % 32) gw_bytes(&g, "", 1);
    }
    return g;
}

static int parse_gguf_adapter(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    LoraAdapter *ad = lora_from_gguf("adapter", buf, n, &g_hp, err, errlen);
    return ad ? adapter_usable(ad, err, errlen) : -1;
}

static void gguf_adapter_corpus(Format *f) {
    AdPos p;
    GwBuf g = gguf_adapter(&p);
    uint8_t *b = g.b;
    size_t n = g.n;
    intact(f, b, n);
    /* every field boundary of the header and directory, and inside the data */
    size_t cuts[] = {4, 8, p.n_tensors + 8, p.n_kv + 8, p.data, p.data + 4, n - 32, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) truncate_at(f, b, n, cuts[i], "section");
    for (int k = 0; k < 4; k++) {
        truncate_at(f, b, n, p.key_len[k] + 4, "key length");
        truncate_at(f, b, n, p.val[k], "value");
        truncate_at(f, b, n, p.name_len[k] + 8, "tensor name");
        truncate_at(f, b, n, p.dim1[k], "dims");
        truncate_at(f, b, n, p.offset[k] + 4, "offset");
    }
    for (size_t off = 0; off < p.data; off++) flip_byte(f, b, n, off, "header or directory");
    uint64_t extra[] = {p.data, n - p.data, 96, 3};
    craft_field(f, b, n, p.n_tensors, 8, "tensor count", extra, 4);
    craft_field(f, b, n, p.n_kv, 8, "key count", extra, 4);
    for (int k = 0; k < 4; k++) {
        craft_field(f, b, n, p.key_len[k], 8, "key length", extra, 4);
        craft_field(f, b, n, p.name_len[k], 8, "name length", extra, 4);
        craft_field(f, b, n, p.n_dims[k], 4, "n_dims", (const uint64_t[]){5, 4}, 2);
        craft_field(f, b, n, p.dim0[k], 8, "dim 0", extra, 4);
        craft_field(f, b, n, p.dim1[k], 8, "dim 1", extra, 4);
        craft_field(f, b, n, p.type[k], 4, "type", (const uint64_t[]){1, 2, 8, 12, 30, 39, 40}, 7);
        craft_field(f, b, n, p.offset[k], 8, "offset", extra, 4);
    }
    craft_field(f, b, n, p.val[3], 4, "alpha", NULL, 0);
    random_damage(f, b, n, p.data, n, 40, 5); /* the data: values, NaN patterns */
    random_damage(f, b, n, 0, p.data, 200, 6);
    free(b);
}

/* ---- HTTP request heads ---- */

static int parse_http(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, buf, n);
    s[n] = 0;
    HttpRequest r;
    int rc = http_parse_head(s, n, &r, err, errlen);
    if (rc > 0) { /* the parser's promises (as fuzz/fuzz_http.c checks them) */
        if ((size_t)rc > n || rc > HTTP_MAX_HEAD || r.n_headers > HTTP_MAX_HEADERS || r.path[0] != '/' ||
            r.content_length < 0)
            abort();
        for (int i = 0; i < r.n_headers; i++)
            if (!r.headers[i].name[0] || !http_header(&r, r.headers[i].name)) abort();
    }
    free(s);
    if (rc >= 0) return 0;
    return rc <= -400 && rc >= -505 ? -1 : -2; /* -2: a status the server cannot send */
}

static void http_text_case(Format *f, const char *text, const char *what) {
    run_case(f, (const uint8_t *)text, strlen(text), what);
}

static void http_corpus(Format *f, const char *req) {
    size_t n = strlen(req);
    const char *end = strstr(req, "\r\n\r\n");
    size_t head = end ? (size_t)(end - req) + 4 : n;
    uint8_t *b = malloc(n);
    if (!b) abort();
    memcpy(b, req, n);
    intact(f, b, n);
    for (size_t at = 1; at < head; at++) truncate_at(f, b, n, at, "head");
    for (size_t off = 0; off < head; off++) flip_byte(f, b, n, off, "head");
    random_damage(f, b, n, 0, head, 100, 9);
    free(b);
}

/* Request heads built around one crafted line. */
static void http_crafted(Format *f) {
    static const char *cl[] = {"-1", "99999999999999999999", "1e3", " 12", "0x10", "12abc", "", "+5",
                               "9223372036854775807", "9223372036854775808", "4294967296"};
    char req[512], what[160];
    for (size_t i = 0; i < sizeof cl / sizeof *cl; i++) {
        snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n{}", cl[i]);
        snprintf(what, sizeof what, "Content-Length: '%s'", cl[i]);
        http_text_case(f, req, what);
    }
    static const char *heads[] = {
        "POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "GET /health HTTP/2.0\r\n\r\n",
        "GET /health HTTP/1.1\n\n",
        "GET /health\r\n\r\n",
        "get /health HTTP/1.1\r\n\r\n",
        "GET health HTTP/1.1\r\n\r\n",
        "GET /he\0alth HTTP/1.1\r\n\r\n",
        "GET /health HTTP/1.1\r\nNo-Colon\r\n\r\n",
        "GET /health HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET /health HTTP/1.1\r\n folded: line\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "GET /health?x=%00 HTTP/1.1\r\n\r\n",
        "GET /%2e%2e/etc/passwd HTTP/1.1\r\n\r\n",
        "GET http://evil/ HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
        "GET /health HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        snprintf(what, sizeof what, "crafted head %zu", i);
        http_text_case(f, heads[i], what);
    }
    /* limits: a line of HTTP_MAX_LINE + 1, HTTP_MAX_HEADERS + 1 headers, a head over HTTP_MAX_HEAD,
     * a target of 300 bytes (the path buffer is 256) */
    size_t cap = HTTP_MAX_HEAD * 2 + 256;
    char *big = malloc(cap);
    if (!big) abort();
    int k = snprintf(big, cap, "GET /health HTTP/1.1\r\nX: ");
    memset(big + k, 'a', HTTP_MAX_LINE + 1);
    strcpy(big + k + HTTP_MAX_LINE + 1, "\r\n\r\n");
    http_text_case(f, big, "a header line over the limit");
    k = snprintf(big, cap, "GET /health HTTP/1.1\r\n");
    for (int h = 0; h <= HTTP_MAX_HEADERS; h++) k += snprintf(big + k, cap - (size_t)k, "X-%d: v\r\n", h);
    strcpy(big + k, "\r\n");
    http_text_case(f, big, "one header over the count");
    k = snprintf(big, cap, "GET /health HTTP/1.1\r\n");
    while ((size_t)k < HTTP_MAX_HEAD + 100) k += snprintf(big + k, cap - (size_t)k, "X: %0200d\r\n", 0);
    strcpy(big + k, "\r\n");
    http_text_case(f, big, "a head over the limit");
    k = snprintf(big, cap, "GET /");
    memset(big + k, 'p', 300);
    strcpy(big + k + 300, " HTTP/1.1\r\n\r\n");
    http_text_case(f, big, "a 300-byte target");
    memset(big, 'G', HTTP_MAX_HEAD + 10);
    big[HTTP_MAX_HEAD + 10] = 0;
    http_text_case(f, big, "no line end at all");
    free(big);
}

/* ---- OpenAI request bodies ---- */

static int parse_oai(const uint8_t *buf, size_t n, int chat, char *err, size_t errlen) {
    OaiRequest q;
    const char *param;
    if (oai_parse((const char *)buf, n, chat, &q, &param, err, errlen)) return -1;
    if (chat ? q.n_msgs < 1 : !q.prompt && q.n_prompt_ids < 1) abort();
    oai_free(&q);
    return 0;
}
static int parse_chat(const uint8_t *buf, size_t n, char *err, size_t errlen) { return parse_oai(buf, n, 1, err, errlen); }
static int parse_completion(const uint8_t *buf, size_t n, char *err, size_t errlen) { return parse_oai(buf, n, 0, err, errlen); }
static int parse_lora_list(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    int k, *ids;
    float *sc;
    if (oai_parse_lora((const char *)buf, n, &k, &ids, &sc, err, errlen)) return -1;
    for (int i = 0; i < k; i++)
        if (ids[i] < 0 || !isfinite(sc[i])) abort();
    free(ids), free(sc);
    return 0;
}

static void body_corpus(Format *f, const char *body) {
    intact(f, (const uint8_t *)body, strlen(body));
    json_mutations(f, wrap_plain, NULL, body, strlen(body), 300);
}


int main(void) {
    (void)gw_small, (void)gw_nested; /* the writer's other helpers */
    signal(SIGALRM, on_alarm);
    /* PEFT */
    Format fp = {"corrupt_peft_adapter", parse_peft, 0, 0, 0, 0};
    size_t cn = 0, sn = 0, mn = 0;
    char *cfg = read_data("phi3-lora/adapter-r8/adapter_config.json", &cn);
    char *st = read_data("phi3-lora/adapter-r8/adapter_model.safetensors", &sn);
    char *model_cfg = read_data("phi3-trained-tiny/config.json", &mn);
    if (cfg && st && model_cfg) {
        char err[256];
        Json *j = json_parse(model_cfg, mn, err, sizeof err);
        HfModel hm;
        memset(&hm, 0, sizeof hm);
        if (!j || hf_parse_config(json_root(j), NULL, &hm, err, sizeof err)) {
            t_check(0, "corrupt_peft_fixture", "%s", err);
        } else {
            g_hp = hm.hp;
            peft_corpus(&fp, cfg, cn, (uint8_t *)st, sn);
            report(&fp);
        }
        hf_close(&hm);
        json_free(j);
    } else {
        t_skip("corrupt_peft_adapter", "../shared/data/phi3-lora or phi3-trained-tiny is absent");
    }
    free(cfg), free(st), free(model_cfg);
    /* GGUF adapter */
    g_hp = (PhiHParams){.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                        .head_dim = 16, .hidden_dim = 132};
    Format fg = {"corrupt_gguf_adapter", parse_gguf_adapter, 0, 0, 0, 0};
    gguf_adapter_corpus(&fg);
    report(&fg);
    /* HTTP */
    Format fh = {"corrupt_http_head", parse_http, 0, 0, 0, 0};
    static const char *chat_body =
        "{\"model\":\"phi\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
        "\"content\":\"hi \\u00e9\"},{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":\"user\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"more\"}]}],\"max_tokens\":4,\"temperature\":0.7,\"top_p\":0.9,\"top_k\":40,"
        "\"min_p\":0.05,\"seed\":42,\"stop\":[\"a\",\"\\n\"],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"presence_penalty\":0.5,\"frequency_penalty\":0.5,\"n\":1,\"lora\":[{\"id\":0,\"scale\":0.5}]}";
    static const char *completion_body =
        "{\"model\":\"phi\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0,\"stop\":\"x\","
        "\"stream\":false,\"seed\":1,\"repeat_penalty\":1.1,\"logprobs\":null}";
    static const char *ids_body = "{\"prompt\":[1,450,29871,32000],\"max_tokens\":2}";
    char req[2048];
    snprintf(req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: "
             "application/json\r\nAuthorization: Bearer secret\r\nConnection: keep-alive\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(chat_body), chat_body);
    http_corpus(&fh, req);
    http_corpus(&fh, "GET /v1/models?x=1 HTTP/1.0\r\nHost: a\r\n\r\n");
    http_crafted(&fh);
    report(&fh);
    Format fc = {"corrupt_chat_request_body", parse_chat, 0, 0, 0, 0};
    body_corpus(&fc, chat_body);
    report(&fc);
    Format fo = {"corrupt_completion_request_body", parse_completion, 0, 0, 0, 0};
    body_corpus(&fo, completion_body);
    body_corpus(&fo, ids_body);
    report(&fo);
    Format fl = {"corrupt_lora_adapters_body", parse_lora_list, 0, 0, 0, 0};
    body_corpus(&fl, "[{\"id\":0,\"scale\":0.5},{\"id\":1,\"scale\":-1e-3}]");
    report(&fl);
    return t_done();
}
