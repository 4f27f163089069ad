#include "app/prompt_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"

/* The file: a 64-byte header of little-endian fields, the token ids (int32), then the keys and
 * the values of those positions, [layer][kv_head][position] rows of head_dim values in the
 * cache's type (docs/FORMAT.md). Version 2 records the key and the value type (kv_types = K | V
 * << 8: 0 f16, 1 f32, 2 q8_0); version 1 (still read) had one flag, 1 for both F32. */
#define PC_MAGIC "PHIPCACH"
#define PC_VERSION 2u
#define PC_HEADER 64

typedef struct {
    uint64_t model_size, model_hash;
    uint32_t kv_types, n_ctx, n_layers, n_kv_heads, head_dim, rope_set, n_tokens;
    uint64_t payload_hash; /* of everything after the header */
} Header;

/* FNV-1a, 64 bits, over 8-byte words (a tail byte by byte): cheap enough for hundreds of MB. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
#define HASH_SEED 0xcbf29ce484222325ull

void prompt_cache_key(const Model *m, const State *s, int n_ctx, PromptCacheKey *k) {
    /* The first and the last MiB of the model image: the header, hyperparameters, tokenizer and
     * tensor directory, and weights at both ends (a different quantization or fine-tune of the
     * same shape differs there); hashing a whole 8 GB file at every run would cost seconds. */
    size_t part = (size_t)1 << 20, n = m->map_size;
    const unsigned char *p = m->map;
    uint64_t h = hash_bytes(HASH_SEED, &m->hp, sizeof m->hp);
    h = hash_bytes(h, p, n < part ? n : part);
    if (n > part) h = hash_bytes(h, p + n - part, part);
    k->model_size = n;
    k->model_hash = h;
    k->kv_types = (uint32_t)s->k_type | (uint32_t)s->v_type << 8;
    k->n_ctx = (uint32_t)n_ctx;
}

static void put32(unsigned char *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> 8 * i); }
static void put64(unsigned char *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> 8 * i); }
static uint32_t get32(const unsigned char *b) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | b[i]; return v; }
static uint64_t get64(const unsigned char *b) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | b[i]; return v; }

static void encode_header(const Header *h, unsigned char *b) {
    memset(b, 0, PC_HEADER);
    memcpy(b, PC_MAGIC, 8);
    put32(b + 8, PC_VERSION);
    put32(b + 12, h->n_tokens);
    put64(b + 16, h->model_size);
    put64(b + 24, h->model_hash);
    put32(b + 32, h->kv_types);
    put32(b + 36, h->n_ctx);
    put32(b + 40, h->n_layers);
    put32(b + 44, h->n_kv_heads);
    put32(b + 48, h->head_dim);
    put32(b + 52, h->rope_set);
    put64(b + 56, h->payload_hash);
}

static int cache_type(const State *s, int kv) { return kv ? s->v_type : s->k_type; }

/* Bytes of one position's keys (kv 0) or values (kv 1) in one layer and KV head: head_dim values
 * (a q8_0 row: its head_dim quants, then its head_dim / 32 f16 scales). */
static size_t row_bytes(const Model *m, const State *s, int kv) {
    return (size_t)kv_type_bytes(cache_type(s, kv), m->hp.head_dim);
}

/* Copies the cache's row of (layer, head, position) to f (out = 1) or from f: model/forward.c's
 * layout, slot = pos % kv_slots; a q8_0 cache keeps its scales after all its quants. */
static void row_io(const Model *m, const State *s, int kv, uint32_t l, uint32_t h, int pos, unsigned char *f,
                   int out) {
    size_t hd = m->hp.head_dim, elems = (size_t)m->hp.n_layers * m->hp.n_kv_heads * (size_t)s->kv_slots * hd;
    size_t off = (((size_t)l * m->hp.n_kv_heads + h) * (size_t)s->kv_slots + (size_t)(pos % s->kv_slots)) * hd;
    unsigned char *c = kv ? s->value_cache : s->key_cache;
    int t = cache_type(s, kv);
    size_t a = t == KV_F32 ? 4 * hd : t == KV_Q8_0 ? hd : 2 * hd;
    unsigned char *p = c + off * (a / hd);
    if (out) memcpy(f, p, a);
    else memcpy(p, f, a);
    if (t == KV_Q8_0) {
        unsigned char *d = c + elems + off / QK_KV * 2;
        if (out) memcpy(f + a, d, hd / QK_KV * 2);
        else memcpy(d, f + a, hd / QK_KV * 2);
    }
}

static uint64_t payload_bytes(const Model *m, const State *s, uint32_t n) {
    return 4ull * n + (uint64_t)m->hp.n_layers * m->hp.n_kv_heads * n * (row_bytes(m, s, 0) + row_bytes(m, s, 1));
}

int prompt_cache_save(const char *path, const PromptCacheKey *k, const State *s, const Model *m, const int *ids,
                      int n) {
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "phi: --prompt-cache %s is not a regular file; not written\n", path);
        return -1;
    }
    if (n < 1 || s->n_cached < n || s->n_cached > s->kv_slots || s->kv_hi > s->kv_slots) {
        /* a sliding-window ring has reused the slots of the first positions */
        fprintf(stderr, "phi: --prompt-cache: the KV cache no longer holds the whole prompt; %s not written\n", path);
        return -1;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return -1;
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        fprintf(stderr, "phi: --prompt-cache: cannot create %s: %s\n", tmp, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return -1;
    }
    Header h = {k->model_size, k->model_hash, k->kv_types, k->n_ctx, m->hp.n_layers, m->hp.n_kv_heads,
                m->hp.head_dim, (uint32_t)s->rope_set, (uint32_t)n, HASH_SEED};
    unsigned char hb[PC_HEADER], r[4 * 1024];
    if (row_bytes(m, s, 0) > sizeof r || row_bytes(m, s, 1) > sizeof r) {
        fprintf(stderr, "phi: --prompt-cache: head size %u is too large; %s not written\n", m->hp.head_dim, path);
        fclose(f);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    /* two passes: the hash of the payload first (it goes in the header), then the bytes */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            encode_header(&h, hb);
            fwrite(hb, 1, PC_HEADER, f);
        }
        for (int i = 0; i < n; i++) {
            unsigned char t[4];
            put32(t, (uint32_t)ids[i]);
            if (pass) fwrite(t, 1, 4, f);
            else h.payload_hash = hash_bytes(h.payload_hash, t, 4);
        }
        for (int kv = 0; kv < 2; kv++)
            for (uint32_t l = 0; l < m->hp.n_layers; l++)
                for (uint32_t hd = 0; hd < m->hp.n_kv_heads; hd++)
                    for (int p = 0; p < n; p++) {
                        size_t rb = row_bytes(m, s, kv);
                        row_io(m, s, kv, l, hd, p, r, 1);
                        if (pass) fwrite(r, 1, rb, f);
                        else h.payload_hash = hash_bytes(h.payload_hash, r, rb);
                    }
    }
    int bad = ferror(f) != 0;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0 && errno != EINVAL;
    int e = errno;
    bad |= fclose(f) != 0;
    if (!bad && lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) bad = 1, e = EEXIST; /* appeared meanwhile */
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "phi: --prompt-cache: cannot write %s: %s\n", path, strerror(bad ? e : errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int prompt_cache_load(const char *path, const PromptCacheKey *k, State *s, const Model *m, const int *ids,
                      int n_ids) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno != ENOENT) fprintf(stderr, "phi: --prompt-cache %s: %s; not used\n", path, strerror(errno));
        return 0;
    }
    const char *why = NULL;
    char whybuf[200];
    unsigned char hb[PC_HEADER];
    unsigned char *buf = NULL;
    struct stat st;
    Header h;
    int keep = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) { why = "not a regular file"; goto out; }
    if (read(fd, hb, PC_HEADER) != PC_HEADER || memcmp(hb, PC_MAGIC, 8)) { why = "not a phi prompt cache"; goto out; }
    uint32_t version = get32(hb + 8);
    if (version != 1 && version != PC_VERSION) { why = "an unknown version"; goto out; }
    h.n_tokens = get32(hb + 12);
    h.model_size = get64(hb + 16);
    h.model_hash = get64(hb + 24);
    h.kv_types = get32(hb + 32);
    if (version == 1) h.kv_types = h.kv_types ? KV_F32 | KV_F32 << 8 : KV_F16 | KV_F16 << 8;
    h.n_ctx = get32(hb + 36);
    h.payload_hash = get64(hb + 56);
    if (h.model_size != k->model_size || h.model_hash != k->model_hash) { why = "made with another model"; goto out; }
    if (get32(hb + 40) != m->hp.n_layers || get32(hb + 44) != m->hp.n_kv_heads || get32(hb + 48) != m->hp.head_dim ||
        get32(hb + 52) > 1) { why = "a damaged header"; goto out; }
    if (h.kv_types != k->kv_types) {
        int fk = (int)(h.kv_types & 0xff), fv = (int)(h.kv_types >> 8 & 0xff);
        if (h.kv_types >> 16 || fk >= KV_TYPE_COUNT || fv >= KV_TYPE_COUNT) { why = "a damaged header"; goto out; }
        snprintf(whybuf, sizeof whybuf, "made with another KV cache type (keys %s, values %s; this run: keys %s, "
                 "values %s: -ctk/-ctv, --kv-f32, --ref)", kv_type_name(fk), kv_type_name(fv),
                 kv_type_name(s->k_type), kv_type_name(s->v_type));
        why = whybuf;
        goto out;
    }
    if (h.n_ctx != k->n_ctx) { why = "made with another context size (-c)"; goto out; }
    if (h.n_tokens < 1 || h.n_tokens > h.n_ctx || h.n_tokens > (uint32_t)s->kv_slots || /* saves never hold more */
        (uint64_t)st.st_size - PC_HEADER > SIZE_MAX || (uint64_t)st.st_size != PC_HEADER + payload_bytes(m, s, h.n_tokens)) {
        why = "truncated or damaged (its size does not match its header)";
        goto out;
    }
    size_t size = (size_t)st.st_size - PC_HEADER;
    if (!(buf = malloc(size))) { why = "too large for the memory left"; goto out; }
    for (size_t got = 0; got < size;) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { why = "unreadable"; goto out; }
        got += (size_t)r;
    }
    /* the hash as the writer computed it: token by token, then row by row */
    uint64_t ph = HASH_SEED;
    for (uint32_t i = 0; i < h.n_tokens; i++) ph = hash_bytes(ph, buf + 4 * (size_t)i, 4);
    size_t off = 4 * (size_t)h.n_tokens, kend = off + (size_t)m->hp.n_layers * m->hp.n_kv_heads * h.n_tokens * row_bytes(m, s, 0);
    for (; off < size; off += row_bytes(m, s, off >= kend)) ph = hash_bytes(ph, buf + off, row_bytes(m, s, off >= kend));
    if (ph != h.payload_hash) { why = "damaged (its checksum does not match)"; goto out; }
    /* the shared prefix, leaving the prompt's last token to evaluate */
    int n = (int)h.n_tokens;
    while (keep < n && keep < n_ids - 1 && (int)get32(buf + 4 * (size_t)keep) == ids[keep]) keep++;
    if (keep > s->kv_slots || keep > s->n_ctx) keep = 0; /* the ring would not hold them */
    const unsigned char *src = buf + 4 * (size_t)n;
    for (int kv = 0; kv < 2; kv++)
        for (uint32_t l = 0; l < m->hp.n_layers; l++)
            for (uint32_t hd = 0; hd < m->hp.n_kv_heads; hd++, src += (size_t)n * row_bytes(m, s, kv))
                for (int p = 0; p < keep; p++)
                    row_io(m, s, kv, l, hd, p, (unsigned char *)(uintptr_t)(src + p * row_bytes(m, s, kv)), 0);
    if (keep) {
        memcpy(s->tokens, ids, (size_t)keep * sizeof *ids);
        s->n_cached = keep;
        s->kv_hi = keep; /* the rows restored are the only ones that count */
        s->rope_set = (int)get32(hb + 52);
    }
out:
    if (why) fprintf(stderr, "phi: --prompt-cache %s: %s; not used\n", path, why);
    free(buf);
    close(fd);
    return keep;
}
