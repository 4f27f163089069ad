/* phi file format: the validating reader and the writer. Layout in docs/FORMAT.md. */
#include "base/errmsg.h"
#include "base/fileio.h"
#include "model/format.h"
#include "kernels/kquant.h" /* KMODE_MIN: which K types have a dmin */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/blocks.h"

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t align_up(uint64_t x) { return (x + PHI_ALIGN - 1) & ~(uint64_t)(PHI_ALIGN - 1); }

/* True when [off, off + len) lies inside a file of size total (overflow-safe). */
static int in_file(uint64_t off, uint64_t len, uint64_t total) {
    return off <= total && len <= total - off;
}

/* True when [a, a + alen) and [b, b + blen) do not overlap (both inside the file). */
static int disjoint(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
    return !alen || !blen || a + alen <= b || b + blen <= a;
}

/* Hyperparameters are a record of little-endian 32-bit words, read word by word so that
 * hosts of either byte order get the same values. */
static void hparams_decode(const uint8_t *p, PhiHParams *hp) {
    uint32_t *w = (uint32_t *)hp;
    for (size_t i = 0; i < sizeof *hp / 4; i++) w[i] = rd32(p + 4 * i);
}
static void hparams_encode(const PhiHParams *hp, uint8_t *p) {
    const uint32_t *w = (const uint32_t *)hp;
    for (size_t i = 0; i < sizeof *hp / 4; i++) wr32(p + 4 * i, w[i]);
}

/* Ranges: docs/FORMAT.md, "Hyperparameters". The forward pass (model/forward.c) forms its sizes
 * and positions in int: n_heads x head_dim, n_kv_heads x head_dim, the qkv width (n_heads +
 * 2 n_kv_heads) head_dim, 2 hidden_dim, 2 dim + n_heads head_dim + hidden_dim, batch x n_heads,
 * positions and window starts. The bounds below keep each of them under 2^23 (positions and the
 * window under 2^24 + 64), so even times a batch of 64 they stay below 2^31. */
int phi_hparams_check(const PhiHParams *hp, char *err, size_t errlen) {
    if (hp->arch != PHI_ARCH_PHI3) return errorf(err, errlen, "unknown architecture %u", hp->arch);
    struct { const char *name; uint32_t v, lo, hi; } r[] = {
        {"vocab_size", hp->vocab_size, 1, PHI_MAX_VOCAB},
        {"dim", hp->dim, 1, PHI_MAX_DIM},
        {"n_layers", hp->n_layers, 1, PHI_MAX_LAYERS},
        {"n_heads", hp->n_heads, 1, PHI_MAX_HEADS},
        {"n_kv_heads", hp->n_kv_heads, 1, hp->n_heads},
        {"head_dim", hp->head_dim, 2, PHI_MAX_HEAD_DIM},
        {"hidden_dim", hp->hidden_dim, 1, PHI_MAX_HIDDEN},
        {"max_seq_len", hp->max_seq_len, 1, PHI_MAX_POSITIONS},
        {"orig_max_seq_len", hp->orig_max_seq_len, 1, PHI_MAX_POSITIONS},
        {"rope_dims", hp->rope_dims, 2, hp->head_dim},
        {"sliding_window", hp->sliding_window, 0, PHI_MAX_WINDOW},
        {"rope_scaling", hp->rope_scaling, 0, PHI_ROPE_LONGROPE},
        {"tie_embeddings", hp->tie_embeddings, 0, 1},
        {"n_stop_ids", hp->n_stop_ids, 0, PHI_MAX_STOP_IDS},
        {"bos_id", hp->bos_id, 0, hp->vocab_size - 1},
        {"eos_id", hp->eos_id, 0, hp->vocab_size - 1},
        {"pad_id", hp->pad_id, 0, hp->vocab_size - 1},
        {"file_type", hp->file_type, 0, TENSOR_TYPE_COUNT - 1},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi)
            return errorf(err, errlen, "hyperparameter %s = %u is out of range (%u ... %u)", r[i].name,
                          r[i].v, r[i].lo, r[i].hi);
    if (hp->n_heads % hp->n_kv_heads)
        return errorf(err, errlen, "n_kv_heads %u does not divide n_heads %u", hp->n_kv_heads,
                      hp->n_heads);
    if ((uint64_t)hp->n_heads * hp->head_dim > PHI_MAX_DIM)
        return errorf(err, errlen, "n_heads x head_dim = %llu is more than %u",
                      (unsigned long long)hp->n_heads * hp->head_dim, PHI_MAX_DIM);
    if (hp->head_dim % 2 || hp->rope_dims % 2)
        return errorf(err, errlen, "head_dim %u and rope_dims %u must be even", hp->head_dim,
                      hp->rope_dims);
    for (uint32_t i = 0; i < hp->n_stop_ids; i++)
        if (hp->stop_ids[i] >= hp->vocab_size)
            return errorf(err, errlen, "stop id %u is outside the vocabulary (%u)", hp->stop_ids[i],
                          hp->vocab_size);
    /* Floats: finite, and (lo, hi] or [lo, hi] */
    struct { const char *name; float v; double lo, hi; int open_lo; const char *range; } f[] = {
        {"rope_theta", hp->rope_theta, 1, 1e12, 0, "1 ... 1e12"},
        {"rms_eps", hp->rms_eps, 1e-12, 0.1, 0, "1e-12 ... 0.1"},
        {"rope_attn_factor", hp->rope_attn_factor, 1e-3, 100, 0, "0.001 ... 100"},
        {"partial_rotary_factor", hp->partial_rotary_factor, 0, 1, 1, "greater than 0, at most 1"},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        float v = f[i].v, lo = (float)f[i].lo, hi = (float)f[i].hi;
        if (!isfinite(v) || v < lo || (f[i].open_lo && v == lo) || v > hi)
            return errorf(err, errlen, "hyperparameter %s = %g is out of range (%s)", f[i].name,
                          (double)v, f[i].range);
    }
    return 0;
}

/* ---- reader ---- */

static int cmp_name(const void *a, const void *b) {
    const PhiTensorInfo *x = *(PhiTensorInfo *const *)a, *y = *(PhiTensorInfo *const *)b;
    return strcmp(x->name, y->name);
}
static int cmp_offset(const void *a, const void *b) {
    const PhiTensorInfo *x = *(PhiTensorInfo *const *)a, *y = *(PhiTensorInfo *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Names unique and data ranges disjoint: checked on a sorted array of pointers. */
static int check_directory(PhiFile *f, char *err, size_t errlen) {
    if (f->n_tensors < 2) return 0;
    PhiTensorInfo **v = malloc(f->n_tensors * sizeof *v);
    if (!v) return errorf(err, errlen, "out of memory");
    for (uint32_t i = 0; i < f->n_tensors; i++) v[i] = &f->tensors[i];
    int rc = 0;
    qsort(v, f->n_tensors, sizeof *v, cmp_name);
    for (uint32_t i = 1; i < f->n_tensors && !rc; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            rc = errorf(err, errlen, "tensor '%s' appears twice", v[i]->name);
    qsort(v, f->n_tensors, sizeof *v, cmp_offset);
    for (uint32_t i = 1; i < f->n_tensors && !rc; i++)
        if (v[i - 1]->offset + v[i - 1]->size > v[i]->offset)
            rc = errorf(err, errlen, "tensors '%s' and '%s' overlap", v[i - 1]->name, v[i]->name);
    free(v);
    return rc;
}

static int parse_entry(const uint8_t *e, uint64_t size, uint64_t data_offset, PhiTensorInfo *t,
                       uint32_t index, char *err, size_t errlen) {
    memcpy(t->name, e, PHI_NAME_MAX);
    if (!memchr(t->name, 0, PHI_NAME_MAX) || !t->name[0])
        return errorf(err, errlen, "tensor %u: name is empty or not NUL-terminated", index);
    for (const char *c = t->name; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return errorf(err, errlen, "tensor %u: name has a non-printable byte", index);
    t->type = rd32(e + 64);
    t->ndim = rd32(e + 68);
    t->ne[0] = rd64(e + 72);
    t->ne[1] = rd64(e + 80);
    t->offset = rd64(e + 88);
    t->size = rd64(e + 96);
    if (!type_traits(t->type))
        return errorf(err, errlen, "tensor '%s': unknown type %u", t->name, t->type);
    if (t->ndim != 1 && t->ndim != 2)
        return errorf(err, errlen, "tensor '%s': %u dimensions (1 or 2 allowed)", t->name, t->ndim);
    if (t->ndim == 1 && (t->ne[1] != 1 || t->type > TENSOR_F16))
        return errorf(err, errlen, "tensor '%s': a 1-D tensor must be F32 or F16 with ne[1] = 1",
                    t->name);
    uint64_t rows = t->ndim == 1 ? 1 : t->ne[0], cols = t->ndim == 1 ? t->ne[0] : t->ne[1];
    uint64_t want = type_tensor_bytes(t->type, rows, cols);
    if (want == 0)
        return errorf(err, errlen, "tensor '%s': shape [%llu, %llu] is invalid for type %s", t->name,
                    (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                    type_traits(t->type)->name);
    if (t->size != want)
        return errorf(err, errlen, "tensor '%s': size %llu, expected %llu", t->name,
                    (unsigned long long)t->size, (unsigned long long)want);
    if (t->offset % PHI_ALIGN || t->offset < data_offset || !in_file(t->offset, t->size, size))
        return errorf(err, errlen, "tensor '%s': data at %llu+%llu is misaligned, before the data "
                      "section or outside the file", t->name, (unsigned long long)t->offset,
                      (unsigned long long)t->size);
    return 0;
}

/* 1 when a tensor's floats that multiply everything hold a NaN or an infinity: the values of a
 * 1-D tensor (F32 or F16: norm weights, rope factors) and the F16 block scales of a quantized
 * matrix. These must be checked here: the fast path quantizes activations to int8, which turns a
 * NaN into zeros, so a corrupt scale or norm would give finite garbage, not NaN logits (a NaN
 * embedding gave a uniform distribution: perplexity = the vocabulary size). The values of F32 and
 * F16 matrices are not read (they are the whole file); their activations stay float, so a NaN
 * there reaches the logits, which generation and perplexity check (model/generate.h).
 * Cost: the scales are 1/9 of a q4 file; measured on a Phi-3-mini-shaped q4 file (docs/FORMAT.md). */
static int halves_nonfinite(const uint8_t *p, uint64_t n) {
    /* Four halves per 64-bit word (little-endian host, as everywhere phi runs): y's 16-bit lane
     * is 0 exactly when that half's exponent is all ones, and (y - 1) & ~y sets a lane's top bit
     * only for a zero lane (the others are at least 0x400; a borrow out of a zero lane can only
     * add to a lane already found). About 8x faster than a byte loop. */
    const uint64_t M = 0x7c007c007c007c00ull;
    uint64_t bad = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t w, y;
        memcpy(&w, p + 2 * i, 8);
        y = (w & M) ^ M;
        bad |= (y - 0x0001000100010001ull) & ~y & 0x8000800080008000ull;
    }
    for (; i < n; i++) bad |= ((p[2 * i] | (unsigned)p[2 * i + 1] << 8) & 0x7c00u) == 0x7c00u;
    return bad != 0;
}

/* The f16 d (and dmin) inside each super-block of a K type: Q4_K/Q5_K open with d, dmin (bytes
 * 0-3), IQ4_XS with d (bytes 0-1), Q6_K ends with d (bytes 208-209). In a K panel type word k
 * of a block is line k of its panel unit (kernels/blocks.h), so the 16 rows' d sit in one
 * 64-byte line: line 0, or line 52 for Q6_KP. Touches one line per 16 x 256 weights: within
 * the few percent of the scales check above. */
static int kblock_nonfinite(const PhiTensorInfo *t) {
    const TypeTraits *ty = type_traits(t->type);
    int q6 = t->type == TENSOR_Q6_K || t->type == TENSOR_Q6_KP;
    /* halves to check at the block's offset: d and dmin, or d alone (IQ4_XS: d, then its 16
     * scale bits, which may look like anything) */
    uint64_t bb = (uint64_t)ty->block_bytes, off = q6 ? 208 : 0, nh = ty->kmode == KMODE_MIN ? 2 : 1;
    uint64_t units = t->size / bb; /* blocks (row types) or 16-row panel units of QR blocks */
    const uint8_t *p = t->data;
    if (ty->kpanel) {
        units /= QR;
        for (uint64_t u = 0; u < units; u++) {
            const uint8_t *line = p + u * QR * bb + off / 4 * 64;
            if (nh == 2 && halves_nonfinite(line, 32)) return 1;
            for (int l = 0; nh == 1 && l < QR; l++)
                if (((line[4 * l] | (unsigned)line[4 * l + 1] << 8) & 0x7c00u) == 0x7c00u) return 1;
        }
        return 0;
    }
    for (uint64_t u = 0; u < units; u++)
        if (halves_nonfinite(p + u * bb + off, nh)) return 1;
    return 0;
}

static int vector_nonfinite(const PhiTensorInfo *t) {
    if (t->ndim == 2) {
        if (type_traits(t->type)->unpack) return kblock_nonfinite(t);
        if (!type_traits(t->type)->has_scales) return 0;
        uint64_t off = type_scales_offset(t->type, t->ne[0], t->ne[1]);
        return halves_nonfinite((const uint8_t *)t->data + off, (t->size - off) / 2);
    }
    const uint8_t *d = t->data;
    if (t->type == TENSOR_F32) {
        for (uint64_t i = 0; i < t->ne[0]; i++)
            if ((rd32(d + 4 * i) & 0x7f800000u) == 0x7f800000u) return 1;
        return 0;
    }
    return halves_nonfinite(d, t->ne[0]);
}

int phi_file_parse(const uint8_t *buf, uint64_t size, PhiFile *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (size < PHI_HEADER_SIZE || memcmp(buf, PHI_MAGIC, 8) != 0)
        return errorf(err, errlen, "not a phi model file (bad magic)");
    uint32_t version = rd32(buf + 8);
    if (version == 1)
        return errorf(err, errlen, "phi file version 1 (row-major quants) is no longer read: "
                      "convert the model again with this build's quant");
    if (version != PHI_VERSION)
        return errorf(err, errlen, "unsupported phi file version %u (this build reads %d)", version,
                    PHI_VERSION);
    if (rd32(buf + 12) != PHI_HEADER_SIZE || rd32(buf + 80) != PHI_ALIGN)
        return errorf(err, errlen, "corrupt header (header size or alignment)");
    uint64_t file_size = rd64(buf + 16);
    if (file_size != size)
        return errorf(err, errlen, "file is %llu bytes but its header says %llu (truncated?)",
                    (unsigned long long)size, (unsigned long long)file_size);
    uint64_t hp_off = rd64(buf + 24), hp_size = rd64(buf + 32);
    uint64_t tok_off = rd64(buf + 40), tok_size = rd64(buf + 48);
    uint64_t dir_off = rd64(buf + 56), n = rd64(buf + 64), data_off = rd64(buf + 72);
    if (hp_size != PHI_HPARAMS_SIZE || !in_file(hp_off, hp_size, size))
        return errorf(err, errlen, "corrupt header (hyperparameters section)");
    if (!in_file(tok_off, tok_size, size))
        return errorf(err, errlen, "corrupt header (tokenizer section outside the file)");
    if (n == 0 || n > PHI_MAX_TENSORS || !in_file(dir_off, n * PHI_TENSOR_ENTRY_SIZE, size))
        return errorf(err, errlen, "corrupt header (tensor directory)");
    /* The metadata sections lie after the header, apart from each other, and before the data
     * (so no tensor can overlap them). */
    uint64_t dir_size = n * PHI_TENSOR_ENTRY_SIZE;
    if (hp_off < PHI_HEADER_SIZE || tok_off < PHI_HEADER_SIZE || dir_off < PHI_HEADER_SIZE ||
        !disjoint(hp_off, hp_size, tok_off, tok_size) || !disjoint(hp_off, hp_size, dir_off, dir_size) ||
        !disjoint(tok_off, tok_size, dir_off, dir_size))
        return errorf(err, errlen, "corrupt header (sections overlap)");
    if (data_off % PHI_ALIGN || data_off > size || data_off < hp_off + hp_size ||
        data_off < tok_off + tok_size || data_off < dir_off + dir_size)
        return errorf(err, errlen, "corrupt header (data offset %llu is misaligned, outside the file "
                      "or before the end of the metadata)", (unsigned long long)data_off);

    hparams_decode(buf + hp_off, &out->hp);
    if (phi_hparams_check(&out->hp, err, errlen)) return -1;
    if (out->hp.sliding_window >= out->hp.max_seq_len) out->hp.sliding_window = 0; /* see format.h */
    out->tokenizer = buf + tok_off;
    out->tokenizer_size = tok_size;
    out->n_tensors = (uint32_t)n;
    out->tensors = calloc(n, sizeof *out->tensors);
    if (!out->tensors) return errorf(err, errlen, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        PhiTensorInfo *t = &out->tensors[i];
        if (parse_entry(buf + dir_off + (uint64_t)i * PHI_TENSOR_ENTRY_SIZE, size, data_off, t, i,
                        err, errlen))
            goto bad;
        t->data = buf + t->offset;
        if (vector_nonfinite(t)) {
            errorf(err, errlen, "tensor '%s' holds NaN or infinite values: the file is corrupt", t->name);
            goto bad;
        }
    }
    if (check_directory(out, err, errlen)) goto bad;
    return 0;
bad:
    phi_file_free(out);
    return -1;
}

void phi_file_free(PhiFile *f) {
    free(f->tensors);
    f->tensors = NULL;
    f->n_tensors = 0;
}

const PhiTensorInfo *phi_file_find(const PhiFile *f, const char *name) {
    for (uint32_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

/* ---- writer ---- */

struct PhiWriter {
    int fd;
    char *path, *tmp_path;
    PhiHParams hp;
    uint8_t *tok;
    uint64_t tok_size;
    PhiTensorInfo *t;
    uint32_t n, cap;
    uint64_t data_offset, total;
    int started;
    int in_memory; /* phi_writer_open_mem: the image is built in mem, no file */
    uint8_t *mem;
};

/* ---- output paths ---- */

int phi_output_check(const char *path, char *err, size_t errlen) {
    size_t n = strlen(path);
    if (n == 0) return errorf(err, errlen, "the output path is empty");
    if (n >= PATH_MAX) return errorf(err, errlen, "the output path is too long");
    if (path[n - 1] == '/') return errorf(err, errlen, "output %s names a folder, not a file", path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return errorf(err, errlen, "output %s is a symbolic link; name the file itself (the "
                          "output is replaced, never written through a link)", path);
        if (S_ISDIR(st.st_mode)) return errorf(err, errlen, "output %s is a folder", path);
        if (!S_ISREG(st.st_mode))
            return errorf(err, errlen, "output %s exists and is not a regular file (a device, FIFO "
                          "or socket); only a regular file is replaced", path);
    } else if (errno != ENOENT) {
        return errorf(err, errlen, "output %s: %s", path, strerror(errno));
    }
    /* its folder: everything up to the last '/', "/" for a file in the root, else "." */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0)
        return errorf(err, errlen, "output folder %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return errorf(err, errlen, "output folder %s is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return errorf(err, errlen, "cannot write in the output folder %s: %s", dir, strerror(errno));
    return 0;
}

/* Files removed when SIGINT, SIGTERM or SIGHUP ends the process: slot 0 is the writer's
 * temporary file, slot 1 the caller's (phi_cleanup_also). The handler only reads these. */
#define CLEANUP_PATH (PATH_MAX + 64)
static char cleanup_path[2][CLEANUP_PATH];
static volatile sig_atomic_t cleanup_on[2];

static void cleanup_set(int slot, const char *path) {
    cleanup_on[slot] = 0;
    if (!path || strlen(path) >= CLEANUP_PATH) return;
    memcpy(cleanup_path[slot], path, strlen(path) + 1);
    cleanup_on[slot] = 1;
}

static void cleanup_handler(int sig) {
    int saved = errno;
    for (int i = 0; i < 2; i++)
        if (cleanup_on[i]) unlink(cleanup_path[i]); /* async-signal-safe */
    errno = saved;
    raise(sig); /* SA_RESETHAND: the default action, once this handler returns */
}

void phi_cleanup_also(const char *path) { cleanup_set(1, path); }

int phi_cleanup_on_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0) return -1;
        if (old.sa_handler == SIG_IGN) continue; /* ignored by whoever started us (nohup, &) */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = cleanup_handler;
        sigemptyset(&sa.sa_mask);
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) sigaddset(&sa.sa_mask, sigs[k]);
        sa.sa_flags = SA_RESETHAND;
        if (sigaction(sigs[i], &sa, NULL) != 0) return -1;
    }
    return 0;
}

PhiWriter *phi_writer_open(const char *path, const PhiHParams *hp, const void *tokenizer,
                           uint64_t tokenizer_size, char *err, size_t errlen) {
    if (phi_hparams_check(hp, err, errlen) || phi_output_check(path, err, errlen)) return NULL;
    PhiWriter *w = calloc(1, sizeof *w);
    size_t plen = strlen(path), tlen = plen + 48;
    if (!w || !(w->path = strdup(path)) || !(w->tmp_path = malloc(tlen)) ||
        !(w->tok = malloc(tokenizer_size ? tokenizer_size : 1))) {
        errorf(err, errlen, "out of memory");
        goto bad;
    }
    w->fd = -1;
    w->hp = *hp;
    if (tokenizer_size) memcpy(w->tok, tokenizer, tokenizer_size);
    w->tok_size = tokenizer_size;
    /* A new file next to the output, created exclusively: never an existing file (nor the
     * target of a link) is opened, so nothing but our own file is ever written. */
    for (unsigned k = 0; k < 1000 && w->fd < 0; k++) {
        snprintf(w->tmp_path, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), k);
        w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (w->fd < 0 && errno != EEXIST) break;
    }
    if (w->fd < 0) {
        errorf(err, errlen, "cannot create %s: %s", w->tmp_path, strerror(errno));
        goto bad;
    }
    cleanup_set(0, w->tmp_path);
    return w;
bad:
    if (w) {
        free(w->path);
        free(w->tmp_path);
        free(w->tok);
        free(w);
    }
    return NULL;
}

int phi_writer_add_tensor(PhiWriter *w, const char *name, uint32_t type, uint32_t ndim,
                          uint64_t rows, uint64_t cols, char *err, size_t errlen) {
    if (w->started) return errorf(err, errlen, "tensor '%s' added after the data began", name);
    if (strlen(name) >= PHI_NAME_MAX) return errorf(err, errlen, "tensor name '%s' is too long", name);
    if (w->n >= PHI_MAX_TENSORS) return errorf(err, errlen, "too many tensors");
    uint64_t nbytes = ndim == 1 ? type_tensor_bytes(type, 1, rows) : type_tensor_bytes(type, rows, cols);
    if (!nbytes || (ndim != 1 && ndim != 2))
        return errorf(err, errlen, "tensor '%s': shape [%llu, %llu] is invalid for its type", name,
                    (unsigned long long)rows, (unsigned long long)cols);
    if (w->n == w->cap) {
        uint32_t cap = w->cap ? 2 * w->cap : 64;
        PhiTensorInfo *t = realloc(w->t, cap * sizeof *t);
        if (!t) return errorf(err, errlen, "out of memory");
        w->t = t;
        w->cap = cap;
    }
    PhiTensorInfo *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->type = type;
    t->ndim = ndim;
    t->ne[0] = rows;
    t->ne[1] = ndim == 1 ? 1 : cols;
    t->size = nbytes;
    return (int)w->n++;
}

static int write_all(int fd, const void *buf, uint64_t n, uint64_t off) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = pwrite(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0) errno = EIO; /* no progress and no error: do not loop */
        if (k <= 0) return -1;
        p += k;
        n -= (uint64_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

int phi_writer_begin_data(PhiWriter *w, char *err, size_t errlen) {
    uint64_t hp_off = PHI_HEADER_SIZE, dir_off = hp_off + PHI_HPARAMS_SIZE;
    uint64_t tok_off = dir_off + (uint64_t)w->n * PHI_TENSOR_ENTRY_SIZE;
    uint64_t off = align_up(tok_off + w->tok_size);
    w->data_offset = off;
    for (uint32_t i = 0; i < w->n; i++) {
        w->t[i].offset = off;
        off = align_up(off + w->t[i].size);
    }
    w->total = off;
    uint64_t meta = w->data_offset;
    uint8_t *m = calloc(1, meta);
    if (!m) return errorf(err, errlen, "out of memory");
    memcpy(m, PHI_MAGIC, 8);
    wr32(m + 8, PHI_VERSION);
    wr32(m + 12, PHI_HEADER_SIZE);
    wr64(m + 16, w->total);
    wr64(m + 24, hp_off);
    wr64(m + 32, PHI_HPARAMS_SIZE);
    wr64(m + 40, tok_off);
    wr64(m + 48, w->tok_size);
    wr64(m + 56, dir_off);
    wr64(m + 64, w->n);
    wr64(m + 72, w->data_offset);
    wr32(m + 80, PHI_ALIGN);
    hparams_encode(&w->hp, m + hp_off);
    for (uint32_t i = 0; i < w->n; i++) {
        uint8_t *e = m + dir_off + (uint64_t)i * PHI_TENSOR_ENTRY_SIZE;
        memcpy(e, w->t[i].name, PHI_NAME_MAX);
        wr32(e + 64, w->t[i].type);
        wr32(e + 68, w->t[i].ndim);
        wr64(e + 72, w->t[i].ne[0]);
        wr64(e + 80, w->t[i].ne[1]);
        wr64(e + 88, w->t[i].offset);
        wr64(e + 96, w->t[i].size);
    }
    if (w->tok_size) memcpy(m + tok_off, w->tok, w->tok_size);
    if (w->in_memory) {
        /* Anonymous memory is zero-filled (the padding), backed by 2 MiB pages where the kernel
         * allows, as model.c's copy of a file. */
        void *p = w->total <= (uint64_t)SIZE_MAX / 2 ? huge_alloc((size_t)w->total) : NULL;
        if (!p) {
            free(m);
            return errorf(err, errlen, "cannot allocate %.2f GiB for the model image",
                          (double)w->total / (1u << 30));
        }
        w->mem = p;
        memcpy(w->mem, m, meta);
        free(m);
        w->started = 1;
        return 0;
    }
    int rc = write_all(w->fd, m, meta, 0);
    free(m);
    if (rc || ftruncate(w->fd, (off_t)w->total))
        return errorf(err, errlen, "cannot write %s: %s", w->tmp_path, strerror(errno));
    w->started = 1;
    return 0;
}

int phi_writer_write_at(PhiWriter *w, int tensor, uint64_t offset, const void *data, uint64_t n,
                        char *err, size_t errlen) {
    if (!w->started || tensor < 0 || (uint32_t)tensor >= w->n)
        return errorf(err, errlen, "write to an unknown tensor");
    const PhiTensorInfo *t = &w->t[tensor];
    if (offset > t->size || n > t->size - offset)
        return errorf(err, errlen, "write past the end of tensor '%s'", t->name);
    if (w->in_memory) {
        memcpy(w->mem + t->offset + offset, data, (size_t)n);
        return 0;
    }
    if (write_all(w->fd, data, n, t->offset + offset))
        return errorf(err, errlen, "cannot write %s: %s", w->tmp_path, strerror(errno));
    return 0;
}

static void writer_free(PhiWriter *w) {
    free(w->path);
    free(w->tmp_path);
    free(w->tok);
    free(w->t);
    free(w);
}

PhiWriter *phi_writer_open_mem(const PhiHParams *hp, const void *tokenizer, uint64_t tokenizer_size,
                               char *err, size_t errlen) {
    if (phi_hparams_check(hp, err, errlen)) return NULL;
    PhiWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->tok = malloc(tokenizer_size ? tokenizer_size : 1))) {
        free(w);
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    w->fd = -1;
    w->in_memory = 1;
    w->hp = *hp;
    if (tokenizer_size) memcpy(w->tok, tokenizer, tokenizer_size);
    w->tok_size = tokenizer_size;
    return w;
}

int phi_writer_finish_mem(PhiWriter *w, uint8_t **image, uint64_t *size, char *err, size_t errlen) {
    if (!w->in_memory || !w->started) {
        phi_writer_abort(w);
        return errorf(err, errlen, "no data was written");
    }
    mprotect(w->mem, (size_t)w->total, PROT_READ);
    *image = w->mem;
    *size = w->total;
    writer_free(w);
    return 0;
}

int phi_writer_finish(PhiWriter *w, char *err, size_t errlen) {
    if (w->in_memory) {
        phi_writer_abort(w);
        return errorf(err, errlen, "an image in memory ends with phi_writer_finish_mem");
    }
    int rc = 0;
    if (!w->started) rc = errorf(err, errlen, "no data was written");
    if (!rc && fsync(w->fd)) rc = errorf(err, errlen, "cannot write %s: %s", w->tmp_path, strerror(errno));
    if (close(w->fd) && !rc) rc = errorf(err, errlen, "cannot write %s: %s", w->tmp_path, strerror(errno));
    w->fd = -1;
    /* The output may have changed since open (a link, a FIFO put there): check it again. */
    if (!rc) rc = phi_output_check(w->path, err, errlen);
    if (!rc && rename(w->tmp_path, w->path))
        rc = errorf(err, errlen, "cannot rename %s to %s: %s", w->tmp_path, w->path, strerror(errno));
    if (rc) unlink(w->tmp_path);
    cleanup_set(0, NULL);
    writer_free(w);
    return rc;
}

void phi_writer_abort(PhiWriter *w) {
    if (!w) return;
    if (w->in_memory) {
        huge_free(w->mem, (size_t)w->total);
        writer_free(w);
        return;
    }
    if (w->fd >= 0) close(w->fd);
    unlink(w->tmp_path);
    cleanup_set(0, NULL);
    writer_free(w);
}
