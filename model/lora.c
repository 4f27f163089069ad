/* LoRA adapters at run time and for merging (model/lora.h). */
#include "model/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"
#include "kernels/kernels.h"

/* The four adapted matrices of a layer, in LoraSet's index order. */
static const SchemaRole roles[4] = {ROLE_QKV, ROLE_O, ROLE_GATE_UP, ROLE_DOWN};

static int role_slot(SchemaRole role) {
    for (int i = 0; i < 4; i++)
        if (roles[i] == role) return i;
    return -1;
}

static const char *role_name(SchemaRole role) {
    switch (role) {
    case ROLE_QKV: return "qkv_proj";
    case ROLE_O: return "o_proj";
    case ROLE_GATE_UP: return "gate_up_proj";
    case ROLE_DOWN: return "down_proj";
    default: return "?";
    }
}

int lora_role_rows(const PhiHParams *hp, SchemaRole role) {
    uint64_t q = (uint64_t)hp->n_heads * hp->head_dim, kv = (uint64_t)hp->n_kv_heads * hp->head_dim;
    switch (role) {
    case ROLE_QKV: return (int)(q + 2 * kv);
    case ROLE_O: return (int)hp->dim;
    case ROLE_GATE_UP: return (int)(2 * (uint64_t)hp->hidden_dim);
    case ROLE_DOWN: return (int)hp->dim;
    default: return 0;
    }
}

int lora_role_cols(const PhiHParams *hp, SchemaRole role) {
    switch (role) {
    case ROLE_QKV: case ROLE_GATE_UP: return (int)hp->dim;
    case ROLE_O: return (int)(hp->n_heads * hp->head_dim);
    case ROLE_DOWN: return (int)hp->hidden_dim;
    default: return 0;
    }
}

/* ---- adapters ---- */

LoraAdapter *lora_adapter_new(const char *name) {
    LoraAdapter *ad = calloc(1, sizeof *ad);
    if (ad) snprintf(ad->name, sizeof ad->name, "%s", name ? name : "adapter");
    return ad;
}

int lora_adapter_add(LoraAdapter *ad, const LoraPiece *piece, char *err, size_t errlen) {
    float *bt = piece->b && piece->rank > 0 && piece->rows > 0 ? malloc((size_t)piece->rank * piece->rows * sizeof *bt) : NULL;
    if (!bt) {
        free(piece->a);
        free(piece->b);
        return errorf(err, errlen, piece->b ? "out of memory" : "LoRA piece without B");
    }
    for (int r = 0; r < piece->rows; r++)
        for (int j = 0; j < piece->rank; j++) bt[(size_t)j * piece->rows + r] = piece->b[(size_t)r * piece->rank + j];
    if (ad->n == ad->cap) {
        int cap = ad->cap ? 2 * ad->cap : 16;
        LoraPiece *p = realloc(ad->p, (size_t)cap * sizeof *p);
        if (!p) {
            free(piece->a);
            free(piece->b);
            free(bt);
            return errorf(err, errlen, "out of memory");
        }
        ad->p = p;
        ad->cap = cap;
    }
    free(piece->b);
    ad->p[ad->n] = *piece;
    ad->p[ad->n].b = NULL;
    ad->p[ad->n++].bt = bt;
    return 0;
}

void lora_adapter_free(LoraAdapter *ad) {
    if (!ad) return;
    for (int i = 0; i < ad->n; i++) {
        free(ad->p[i].a);
        free(ad->p[i].bt);
    }
    free(ad->p);
    free(ad);
}

size_t lora_adapter_bytes(const LoraAdapter *ad) {
    size_t n = 0;
    for (int i = 0; i < ad->n; i++)
        n += ((size_t)ad->p[i].rank * ad->p[i].cols + (size_t)ad->p[i].rows * ad->p[i].rank) * sizeof(float);
    return n;
}

int lora_adapter_check(const LoraAdapter *ad, const PhiHParams *hp, char *err, size_t errlen) {
    for (int i = 0; i < ad->n; i++) {
        const LoraPiece *p = &ad->p[i];
        int rows = lora_role_rows(hp, p->role), cols = lora_role_cols(hp, p->role);
        if (p->layer < 0 || (uint32_t)p->layer >= hp->n_layers)
            return errorf(err, errlen, "%s: layer %d, but the model has %u layers", ad->name, p->layer,
                          hp->n_layers);
        if (!rows || p->rank < 1 || !p->a || !p->bt)
            return errorf(err, errlen, "%s: layer %d: not a LoRA update of a layer matrix", ad->name, p->layer);
        if (p->cols != cols || p->row0 < 0 || p->rows < 1 || p->row0 > rows - p->rows)
            return errorf(err, errlen,
                          "%s: layer %d %s: update of rows [%d, %d) x %d columns does not fit the "
                          "model's [%d][%d]", ad->name, p->layer, role_name(p->role), p->row0,
                          p->row0 + p->rows, p->cols, rows, cols);
        if (!isfinite(p->scale))
            return errorf(err, errlen, "%s: layer %d %s: scale is not finite", ad->name, p->layer,
                          role_name(p->role));
        for (int j = 0; j < i; j++) {
            const LoraPiece *o = &ad->p[j];
            if (o->layer == p->layer && o->role == p->role && o->row0 < p->row0 + p->rows &&
                p->row0 < o->row0 + o->rows)
                return errorf(err, errlen, "%s: layer %d %s is updated twice (rows [%d, %d) and [%d, %d))",
                              ad->name, p->layer, role_name(p->role), o->row0, o->row0 + o->rows,
                              p->row0, p->row0 + p->rows);
        }
    }
    return 0;
}

/* ---- sets ---- */

typedef struct {
    const LoraPiece *p;
    float s; /* user scale times c */
} LoraUse;

struct LoraSet {
    PhiHParams hp;
    int n_adapters;
    int n, cap;
    LoraUse *use;  /* ordered by (layer, slot) */
    int *start;    /* [n_layers * 4 + 1]: uses of (layer, slot) are use[start[k] .. start[k + 1]) */
};

LoraSet *lora_set_new(const PhiHParams *hp) {
    LoraSet *set = calloc(1, sizeof *set);
    if (!set) return NULL;
    set->hp = *hp;
    set->start = calloc((size_t)hp->n_layers * 4 + 1, sizeof *set->start);
    if (!set->start) {
        free(set);
        return NULL;
    }
    return set;
}

void lora_set_free(LoraSet *set) {
    if (!set) return;
    free(set->use);
    free(set->start);
    free(set);
}

int lora_set_count(const LoraSet *set) { return set ? set->n_adapters : 0; }

static int use_key(const PhiHParams *hp, const LoraUse *u) {
    (void)hp;
    return u->p->layer * 4 + role_slot(u->p->role);
}

int lora_set_add(LoraSet *set, const LoraAdapter *ad, float s, char *err, size_t errlen) {
    if (lora_adapter_check(ad, &set->hp, err, errlen)) return -1;
    if (!isfinite(s)) return errorf(err, errlen, "%s: the scale is not a finite number", ad->name);
    set->n_adapters++;
    if (s == 0) return 0; /* adds nothing: exactly the base */
    if (set->n + ad->n > set->cap) {
        int cap = set->n + ad->n + 16;
        LoraUse *u = realloc(set->use, (size_t)cap * sizeof *u);
        if (!u) {
            set->n_adapters--;
            return errorf(err, errlen, "out of memory");
        }
        set->use = u;
        set->cap = cap;
    }
    for (int i = 0; i < ad->n; i++) set->use[set->n++] = (LoraUse){&ad->p[i], s * ad->p[i].scale};
    /* Stable insertion sort by (layer, matrix): adapters stay in the order they were added. */
    for (int i = 1; i < set->n; i++) {
        LoraUse u = set->use[i];
        int k = use_key(&set->hp, &u), j = i - 1;
        while (j >= 0 && use_key(&set->hp, &set->use[j]) > k) {
            set->use[j + 1] = set->use[j];
            j--;
        }
        set->use[j + 1] = u;
    }
    int n_keys = (int)set->hp.n_layers * 4;
    for (int k = 0, i = 0; k <= n_keys; k++) {
        while (i < set->n && use_key(&set->hp, &set->use[i]) < k) i++;
        set->start[k] = i;
    }
    return 0;
}

/* ---- applying ---- */

/* Per calling thread: t [n][rank] and the update [n][rows]. */
static _Thread_local float *scratch;
static _Thread_local size_t scratch_cap;

void lora_free_scratch(void) {
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}

static float *scratch_get(size_t n) {
    if (n > scratch_cap) {
        float *p = realloc(scratch, n * sizeof *p);
        if (!p) return NULL;
        scratch = p;
        scratch_cap = n;
    }
    return scratch;
}

/* y[i][r] += sum_k t[i][k] bt[k][r] for the rows [r0, r1) of a thread: rank axpys per token over
 * contiguous rows, with the attention kernels' axpy (SIMD on the fast path). */
typedef struct {
    const float *bt, *t;
    float *y;
    int n, rank, rows, ldy;
    void (*axpy)(float *y, float a, const float *v, int n); /* the path's: SIMD or scalar */
} BJob;

static void b_job(void *arg, int ith, int nth) {
    const BJob *j = arg;
    int r0, r1;
    pool_split(j->rows, 16, ith, nth, &r0, &r1);
    for (int i = 0; i < j->n; i++) {
        float *yi = j->y + (size_t)i * j->ldy;
        const float *ti = j->t + (size_t)i * j->rank;
        for (int k = 0; k < j->rank; k++) {
            if (r1 > r0) j->axpy(yi + r0, ti[k], j->bt + (size_t)k * j->rows + r0, r1 - r0);
        }
    }
}

void lora_apply(const LoraSet *set, int layer, SchemaRole role, const float *x, int n, float *y,
                LoraMatmulFn mm, Pool *pool) {
    int slot = role_slot(role);
    if (!set || slot < 0 || layer < 0 || (uint32_t)layer >= set->hp.n_layers) return;
    /* the fast path's matmul gets the selected ISA's axpy, the reference path the scalar one */
    void (*axpy)(float *, float, const float *, int) = (mm == matmul ? attn_kernels() : attn_kernels_ref())->axpy_f32;
    int k = layer * 4 + slot, rows = lora_role_rows(&set->hp, role);
    for (int u = set->start[k]; u < set->start[k + 1]; u++) {
        const LoraPiece *p = set->use[u].p;
        float s = set->use[u].s;
        float *t = scratch_get((size_t)n * (size_t)p->rank);
        if (!t) abort(); /* a few MB at most; the forward pass has no error path */
        MatView a = matview(TENSOR_F32, p->a, p->rank, p->cols);
        mm(&a, x, n, t, pool); /* t[n][rank] = x A^T: A streamed once for the n tokens */
        for (size_t i = 0; i < (size_t)n * p->rank; i++) t[i] *= s;
        BJob bj = {p->bt, t, y + p->row0, n, p->rank, p->rows, rows, axpy};
        /* y += t B^T, straight into y; small updates (decode of a narrow matrix) stay on the caller */
        pool_run((long long)n * p->rows * p->rank >= 65536 ? pool : NULL, b_job, &bj);
    }
}

void lora_merge_rows(const LoraSet *set, int layer, SchemaRole role, int r0, int n, float *w) {
    int slot = role_slot(role);
    if (!set || slot < 0 || layer < 0 || (uint32_t)layer >= set->hp.n_layers) return;
    int k = layer * 4 + slot, cols = lora_role_cols(&set->hp, role);
    double *acc = malloc((size_t)cols * sizeof *acc);
    if (!acc) abort();
    for (int u = set->start[k]; u < set->start[k + 1]; u++) {
        const LoraPiece *p = set->use[u].p;
        double s = set->use[u].s;
        for (int i = 0; i < n; i++) {
            int r = r0 + i - p->row0; /* row of B */
            if (r < 0 || r >= p->rows) continue;
            memset(acc, 0, (size_t)cols * sizeof *acc);
            for (int j = 0; j < p->rank; j++) {
                double bj = p->bt[(size_t)j * p->rows + r];
                const float *aj = p->a + (size_t)j * cols;
                for (int c = 0; c < cols; c++) acc[c] += bj * aj[c];
            }
            float *wi = w + (size_t)i * cols;
            for (int c = 0; c < cols; c++) wi[c] = (float)(wi[c] + s * acc[c]);
        }
    }
    free(acc);
}

/* ---- the model's set ---- */

int lora_attach(Model *m, const LoraAdapter *ad, float s, char *err, size_t errlen) {
    if (!m->lora && !(m->lora = lora_set_new(&m->hp))) return errorf(err, errlen, "out of memory");
    return lora_set_add(m->lora, ad, s, err, errlen);
}

void lora_detach_all(Model *m) {
    lora_set_free(m->lora);
    m->lora = NULL;
}
