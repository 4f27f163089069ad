/* gguf_random: writes a Phi-3-mini-shaped GGUF with random weights in llama.cpp's `phi3` layout,
 * so that phi and llama.cpp can be timed on the very same file (scripts/bench-peer.sh). Not part
 * of phi's binaries: no project code, libc only.
 *
 *   gguf_random [--layers N] [--seed N] TEMPLATE.gguf MIX OUT.gguf
 *
 * TEMPLATE gives the tokenizer: every `tokenizer.*` key/value is copied byte for byte (use
 * ../shared/data/phi3-gguf/trained-tiny-Q4_K_M.gguf: Phi-3's 32064-entry vocabulary). MIX:
 *   q4_k_m  the tensor types llama-quantize's Q4_K_M gives Phi-3: Q4_K everywhere but attn_qkv
 *           (Q5_K), output (Q6_K) and ffn_down of the "more bits" layers (Q6_K: the first and
 *           last eighth and every third layer between; the rest Q4_K)
 *   q4_0    Q4_0 everywhere but output (Q6_K), as llama-quantize's Q4_0
 *   q8_0    Q8_0 everywhere
 *   iq4_xs  IQ4_XS everywhere but output (Q6_K)
 * Block contents are random bytes with every f16 scale set to a finite value of a plausible size
 * (~1e-3), so that no value is NaN or Inf; the model's output is noise, its speed is real. Norm
 * weights are 1. Shape: vocab 32064, dim 3072, 32 heads (all kv), ffn 8192, 32 layers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VOCAB = 32064, DIM = 3072, FFN = 8192, HEADS = 32, ALIGN = 32 };
enum { T_F32 = 0, T_Q4_0 = 2, T_Q8_0 = 8, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_IQ4_XS = 23 };

static void die(const char *m) {
    fprintf(stderr, "gguf_random: %s\n", m);
    exit(1);
}

/* --- writing ------------------------------------------------------------------------------ */
static FILE *out;
static void put(const void *p, size_t n) {
    if (fwrite(p, 1, n, out) != n) die("write failed");
}
static void put_u32(uint32_t v) { put(&v, 4); } /* x86/ARM little-endian hosts only */
static void put_u64(uint64_t v) { put(&v, 8); }
static void put_str(const char *s) {
    put_u64(strlen(s));
    put(s, strlen(s));
}
static void kv_u32(const char *k, uint32_t v) { put_str(k), put_u32(4), put_u32(v); }
static void kv_f32(const char *k, float v) { put_str(k), put_u32(6), put(&v, 4); }
static void kv_str(const char *k, const char *v) { put_str(k), put_u32(8), put_str(v); }

/* --- reading the template's key/values ------------------------------------------------------ */
static const uint8_t *tp, *tend;
static uint64_t get(int n) {
    if ((size_t)(tend - tp) < (size_t)n) die("template: truncated");
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)tp[i] << (8 * i);
    tp += n;
    return v;
}
static void skip_value(uint32_t type, int depth) {
    static const int size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (depth > 4 || type > 12) die("template: bad value type");
    if (type == 8) {
        uint64_t n = get(8);
        if (n > (uint64_t)(tend - tp)) die("template: bad string");
        tp += n;
    } else if (type == 9) {
        uint32_t et = (uint32_t)get(4);
        uint64_t n = get(8);
        for (uint64_t i = 0; i < n; i++) skip_value(et, depth + 1);
    } else {
        get(size[type]);
    }
}

/* --- tensors -------------------------------------------------------------------------------- */
typedef struct {
    char name[64];
    uint64_t ne0, ne1; /* ne1 0: a vector */
    uint32_t type;
    uint64_t off, bytes;
} Tensor;
static Tensor ts[16 + 6 * 64];
static int nt;

static uint64_t row_bytes(uint32_t type, uint64_t n) {
    switch (type) {
    case T_F32: return n * 4;
    case T_Q4_0: return n / 32 * 18;
    case T_Q8_0: return n / 32 * 34;
    case T_Q4_K: return n / 256 * 144;
    case T_Q5_K: return n / 256 * 176;
    case T_IQ4_XS: return n / 256 * 136;
    default: return n / 256 * 210; /* Q6_K */
    }
}
static void add(const char *name, uint64_t ne0, uint64_t ne1, uint32_t type) {
    Tensor *t = &ts[nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = ne0, t->ne1 = ne1, t->type = ne1 ? type : T_F32;
    t->bytes = row_bytes(t->type, ne0) * (ne1 ? ne1 : 1);
}

static uint64_t rng;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void scale_at(uint8_t *p) { /* an f16 in [2^-10, 2^-9): exponent 5, random mantissa */
    uint16_t h = (uint16_t)((5u << 10) | (next() & 0x3FF));
    memcpy(p, &h, 2);
}

/* One tensor's bytes: random blocks whose f16 scales are made finite. */
static void fill(uint8_t *b, const Tensor *t) {
    if (t->type == T_F32) {
        for (uint64_t i = 0; i < t->bytes / 4; i++) ((float *)b)[i] = 1.0f;
        return;
    }
    for (uint64_t i = 0; i < t->bytes; i += 8) {
        uint64_t r = next();
        memcpy(b + i, &r, t->bytes - i < 8 ? t->bytes - i : 8);
    }
    uint64_t bs = row_bytes(t->type, t->type >= T_Q4_K ? 256 : 32);
    for (uint64_t o = 0; o < t->bytes; o += bs) {
        if (t->type == T_Q6_K) {
            scale_at(b + o + 208); /* d follows ql, qh and the scales */
        } else {
            scale_at(b + o); /* d (IQ4_XS: its 6-bit scales stay random, ls - 32 in -32 .. 31) */
            if (t->type == T_Q4_K || t->type == T_Q5_K) scale_at(b + o + 2); /* dmin */
        }
    }
}

int main(int argc, char **argv) {
    int layers = 32, a = 1;
    rng = 1;
    for (; a + 1 < argc && argv[a][0] == '-' && argv[a][1] == '-'; a += 2) {
        if (!strcmp(argv[a], "--layers")) layers = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--seed")) rng = strtoull(argv[a + 1], 0, 10);
        else die("unknown option");
    }
    if (argc - a != 3) die("usage: gguf_random [--layers N] [--seed N] TEMPLATE.gguf q4_k_m|q4_0|q8_0|iq4_xs OUT.gguf");
    if (layers < 1 || layers > 64) die("--layers must be 1..64");
    const char *mix = argv[a + 1];
    int km = !strcmp(mix, "q4_k_m"), q40 = !strcmp(mix, "q4_0"), q80 = !strcmp(mix, "q8_0"), iq = !strcmp(mix, "iq4_xs");
    if (!km && !q40 && !q80 && !iq) die("MIX must be q4_k_m, q4_0, q8_0 or iq4_xs");

    FILE *tf = fopen(argv[a], "rb");
    if (!tf) die("cannot open the template");
    static uint8_t head[64 << 20];
    size_t tn = fread(head, 1, sizeof head, tf);
    fclose(tf);
    tp = head, tend = head + tn;
    if (get(4) != 0x46554747u) die("template is not a GGUF file");
    get(4);
    get(8);
    uint64_t tkv = get(8);
    const uint8_t *keep[1024], *keep_end[1024];
    int nkeep = 0;
    for (uint64_t i = 0; i < tkv; i++) {
        const uint8_t *start = tp;
        uint64_t kl = get(8);
        if (kl > (uint64_t)(tend - tp)) die("template: bad key");
        int tok = kl > 10 && !memcmp(tp, "tokenizer.", 10);
        tp += kl;
        skip_value((uint32_t)get(4), 0);
        if (tok && nkeep < 1024) keep[nkeep] = start, keep_end[nkeep++] = tp;
    }

    uint32_t wt = km ? T_Q4_K : q40 ? T_Q4_0 : iq ? T_IQ4_XS : T_Q8_0;
    char nm[64];
    add("token_embd.weight", DIM, VOCAB, wt);
    for (int l = 0; l < layers; l++) {
        int more = l < layers / 8 || l >= 7 * layers / 8 || (l - layers / 8) % 3 == 2;
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l), add(nm, DIM, 0, 0);
        snprintf(nm, sizeof nm, "blk.%d.attn_qkv.weight", l), add(nm, DIM, 3 * DIM, km ? T_Q5_K : wt);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l), add(nm, DIM, DIM, wt);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l), add(nm, DIM, 0, 0);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l), add(nm, DIM, 2 * FFN, wt);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l), add(nm, FFN, DIM, km && more ? T_Q6_K : wt);
    }
    add("output_norm.weight", DIM, 0, 0);
    add("output.weight", DIM, VOCAB, q80 ? T_Q8_0 : T_Q6_K);

    out = fopen(argv[a + 2], "wb");
    if (!out) die("cannot create the output");
    put_u32(0x46554747u), put_u32(3), put_u64((uint64_t)nt), put_u64(12 + (uint64_t)nkeep);
    kv_str("general.architecture", "phi3");
    kv_str("general.name", "phi3-mini-random");
    kv_u32("phi3.context_length", 4096);
    kv_u32("phi3.embedding_length", DIM);
    kv_u32("phi3.feed_forward_length", FFN);
    kv_u32("phi3.block_count", (uint32_t)layers);
    kv_u32("phi3.attention.head_count", HEADS);
    kv_u32("phi3.attention.head_count_kv", HEADS);
    kv_f32("phi3.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_u32("phi3.rope.dimension_count", DIM / HEADS);
    kv_f32("phi3.rope.freq_base", 10000.0f);
    kv_u32("phi3.attention.sliding_window", 2047);
    for (int i = 0; i < nkeep; i++) put(keep[i], (size_t)(keep_end[i] - keep[i]));
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        Tensor *t = &ts[i];
        put_str(t->name);
        put_u32(t->ne1 ? 2 : 1);
        put_u64(t->ne0);
        if (t->ne1) put_u64(t->ne1);
        put_u32(t->type);
        t->off = off;
        put_u64(off);
        off = (off + t->bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    long pos = ftell(out);
    static const uint8_t zero[ALIGN];
    put(zero, (size_t)((ALIGN - pos % ALIGN) % ALIGN));
    uint8_t *buf = NULL;
    uint64_t cap = 0;
    for (int i = 0; i < nt; i++) {
        Tensor *t = &ts[i];
        uint64_t padded = (t->bytes + ALIGN - 1) / ALIGN * ALIGN;
        if (padded > cap && !(buf = realloc(buf, cap = padded))) die("out of memory");
        memset(buf, 0, padded);
        fill(buf, t);
        put(buf, padded);
    }
    free(buf);
    if (fclose(out)) die("write failed");
    printf("gguf_random: %s: %d tensors, %.2f GB of weights, mix %s\n", argv[a + 2], nt, off / 1e9, mix);
    return 0;
}
