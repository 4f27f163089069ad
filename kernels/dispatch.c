/* Runtime ISA selection (CPUID / HWCAP) among the IsaKernels tables, the per-thread activation
 * scratch, the matvec / matmul drivers that quantize activations once and split weight rows
 * between threads, and the elementwise and attention entry points of the selection. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/isa.h"
#include "kernels/kquant.h"
#include "kernels/ref.h"

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif
#if defined(__arm__) && !defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
/* The 32-bit ARM AT_HWCAP bits (Linux arch/arm/include/uapi/asm/hwcap.h). */
#define PHI_HWCAP_ARM_HALF (1 << 1)
#define PHI_HWCAP_ARM_NEON (1 << 12)
#define PHI_HWCAP_ARM_VFPv4 (1 << 16)
#endif

/* ---- CPU features ---- */

#if defined(__x86_64__)
typedef struct {
    int init, avx2, avx512, avx512vnni, avxvnni, amx;
} X86Features;
static X86Features x86;

static void x86_detect(void) {
    if (x86.init) return;
    x86.init = 1;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    unsigned xlo, xhi;
    __asm__ __volatile__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    int ymm_ok = (xlo & 6) == 6, zmm_ok = (xlo & 0xe6) == 0xe6; /* OS saves ymm / zmm state */
    if (!ymm_ok || __get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int vnni512 = (c >> 11) & 1, amx = ((d >> 24) & 3) == 3; /* AMX-TILE, AMX-INT8 */
    __cpuid_count(7, 1, a, b, c, d);
    int avxvnni = (a >> 4) & 1;
    x86.avx2 = avx2 && fma && f16c;
    x86.avx512 = x86.avx2 && zmm_ok && f && bw && vl;
    x86.avx512vnni = x86.avx512 && vnni512;
    x86.avxvnni = x86.avx2 && avxvnni;
    /* The tile registers: the OS enables their state (XCR0 bits 17-18), and Linux lends the 8 KB
     * of tile data to a process that asks for it first (arch_prctl ARCH_REQ_XCOMP_PERM, feature
     * 18), process-wide; without the permission the first tile load raises SIGILL. */
    x86.amx = x86.avx512vnni && amx && ((xlo >> 17) & 3) == 3;
#if defined(__linux__)
    if (x86.amx && syscall(SYS_arch_prctl, 0x1023, 18) != 0) x86.amx = 0;
#else
    x86.amx = 0;
#endif
#ifdef PHI_ZMM_EMU /* make zmm-emu-test: the AVX-512, AVX-VNNI and AMX kernels on emulated intrinsics */
    x86.avx512 = x86.avx512vnni = x86.avxvnni = x86.amx = x86.avx2;
#endif
}
int cpu_has_avx2(void) { x86_detect(); return x86.avx2; }
int cpu_has_avxvnni(void) { x86_detect(); return x86.avxvnni; }
int cpu_has_avx512vnni(void) { x86_detect(); return x86.avx512vnni; }
int cpu_has_amx(void) { x86_detect(); return x86.amx; }
#endif

#if defined(__aarch64__)
int cpu_has_dotprod(void) {
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}
#endif

#if defined(__arm__) && !defined(__aarch64__)
/* kernels/arm_neon.c is built with -mfpu=neon-vfpv4: NEON alone (Cortex-A8, A9) is not enough. */
int cpu_has_neon(void) {
#if defined(__linux__)
    unsigned long need = PHI_HWCAP_ARM_NEON | PHI_HWCAP_ARM_VFPv4 | PHI_HWCAP_ARM_HALF;
    return (getauxval(AT_HWCAP) & need) == need;
#else
    return 0;
#endif
}
#endif

/* ---- selection ---- */

static const IsaKernels *const isa_tables[] = {
    &isa_scalar,
#if defined(__x86_64__)
    &isa_avx2, &isa_avxvnni, &isa_avx512vnni, &isa_amx,
#elif defined(__aarch64__)
    &isa_neon, &isa_dotprod,
#elif defined(__arm__)
    &isa_neon,
#endif
};
#define N_ISA ((int)(sizeof(isa_tables) / sizeof(isa_tables[0])))

/* The selection; atomic so that a first use racing on several threads (lazy init) is safe. */
static const IsaKernels *_Atomic cur;

/* Derived from the tables, once: their names (NULL-terminated), and their attention kernels
 * with NULL dot / axpy / to_f16 entries filled in from the scalar table. */
static const char *isa_names[N_ISA + 1];
static AttnKernels isa_attn[N_ISA];
static pthread_once_t derived_once = PTHREAD_ONCE_INIT;

static void derived_init(void) {
    const AttnKernels *s = &isa_scalar.attn;
    for (int i = 0; i < N_ISA; i++) {
        AttnKernels a = isa_tables[i]->attn;
        if (!a.dot_f16) a.dot_f16 = s->dot_f16;
        if (!a.axpy_f16) a.axpy_f16 = s->axpy_f16;
        if (!a.dot_f32) a.dot_f32 = s->dot_f32;
        if (!a.axpy_f32) a.axpy_f32 = s->axpy_f32;
        if (!a.to_f16) a.to_f16 = s->to_f16;
        if (!a.to_q8) a.to_q8 = s->to_q8;
        if (!a.scores_q8) a.scores_q8 = s->scores_q8;
        if (!a.wsum_q8) a.wsum_q8 = s->wsum_q8;
        isa_names[i] = isa_tables[i]->name;
        isa_attn[i] = a;
    }
}

const char *const *kernels_isa_list(void) {
    pthread_once(&derived_once, derived_init);
    return isa_names;
}

static const IsaKernels *find_isa(const char *name) {
    for (int i = 0; i < N_ISA; i++)
        if (strcmp(isa_tables[i]->name, name) == 0) return isa_tables[i];
    return NULL;
}

int kernels_isa_available(const char *name) {
    const IsaKernels *k = name ? find_isa(name) : NULL;
    return k && k->available();
}

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

int kernels_init(const char *isa) {
    pthread_once(&cache_once, tiled_detect_caches);
    if (!isa || !*isa) isa = getenv("PHI_ISA");
    if (!isa || !*isa) {
        const IsaKernels *best = &isa_scalar;
        for (int i = 0; i < N_ISA; i++)
            if (isa_tables[i]->available()) best = isa_tables[i];
        atomic_store(&cur, best);
        return 0;
    }
    const IsaKernels *k = find_isa(isa);
    if (!k) {
        fprintf(stderr, "phi: unknown ISA '%s' (this build knows:", isa);
        for (int i = 0; i < N_ISA; i++) fprintf(stderr, " %s", isa_tables[i]->name);
        fprintf(stderr, ")\n");
        return -1;
    }
    if (!k->available()) {
        fprintf(stderr, "phi: ISA '%s' is not supported by this CPU\n", isa);
        return -1;
    }
    atomic_store(&cur, k);
    return 0;
}

static pthread_once_t lazy_once = PTHREAD_ONCE_INIT;

static void lazy_init(void) {
    if (!atomic_load(&cur) && kernels_init(NULL) != 0)
        atomic_store(&cur, &isa_scalar); /* bad $PHI_ISA: stay portable */
}

static const IsaKernels *isa(void) {
    const IsaKernels *k = atomic_load_explicit(&cur, memory_order_acquire);
    if (k) return k;
    pthread_once(&lazy_once, lazy_init);
    return atomic_load(&cur);
}

const char *kernels_isa_name(void) { return isa()->name; }

const IsaKernels *kernels_isa(void) { return isa(); }

const AttnKernels *attn_kernels(void) {
    const IsaKernels *k = isa();
    pthread_once(&derived_once, derived_init);
    for (int i = 0; i < N_ISA; i++)
        if (isa_tables[i] == k) return &isa_attn[i];
    return &isa_scalar.attn;
}

const AttnKernels *attn_kernels_ref(void) { return &isa_scalar.attn; }

/* ---- scratch ---- */

static _Thread_local uint8_t *scratch;
static _Thread_local size_t scratch_cap;

static uint8_t *scratch_get(size_t n) { return scratch_grow(&scratch, &scratch_cap, n, "activation scratch"); }

void kernels_free_scratch(void) {
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
    tiled_free_scratch();
}

/* ---- drivers ---- */

#define ROW_ALIGN QR        /* row chunks are whole weight panels */
#define CHUNKS_PER_THREAD 4  /* the largest chunk: this fraction of a thread's share */
#define MIN_POOL_WORK 32768  /* rows * cols * n_tok below this run on the caller alone */

typedef struct {
    const MatView *w;
    const IsaKernels *k;
    ActBuf a;
    const float *x;
    int n_tok;
    float *y;
    MatFn mat;
    const void *act;    /* what mat takes: &a or x */
    int chunk;          /* rows per chunk at most */
    atomic_int next;    /* first row of the next unclaimed chunk */
} MatJob;

static void pack_job(void *arg, int ith, int nth) {
    MatJob *j = arg;
    int t0, t1;
    pool_split(j->n_tok, j->a.tt, ith, nth, &t0, &t1);
    if (t1 > t0) act_pack(&j->a, j->k, j->w->type, j->x, t0, t1);
}

/* Threads claim row chunks from a shared counter rather than fixed shares, so a thread that
 * runs slower (descheduled by another process, or on a smaller core) takes fewer of them.
 * Chunks shrink as rows run out (a fraction of what is left, at least ROW_ALIGN rows; for
 * prompts whole pairs of panels), so the threads also finish close together. */
static void mat_job(void *arg, int ith, int nth) {
    (void)ith;
    MatJob *j = arg;
    int rows = j->w->rows;
    /* prompts: whole pairs of panels, which the two-panel tiles take (kernels/isa.h TilePairFn);
     * the shrinking last chunks of one panel ran the one-panel tile for ~10 % of a pp512's tile time */
    int align = j->n_tok > ACT_TT ? 2 * ROW_ALIGN : ROW_ALIGN;
    for (;;) {
        int r0 = atomic_load_explicit(&j->next, memory_order_relaxed), n;
        do {
            if (r0 >= rows) return;
            n = (rows - r0) / (2 * nth);
            n = n < j->chunk ? n : j->chunk;
            n = n < align ? align : n - n % align;
        } while (!atomic_compare_exchange_weak_explicit(&j->next, &r0, r0 + n, memory_order_relaxed,
                                                        memory_order_relaxed));
        int r1 = r0 + n < rows ? r0 + n : rows;
        j->mat(j->w, j->act, 0, j->n_tok, j->y, rows, r0, r1);
    }
}

void matmul(const MatView *w, const float *x, int n_tok, float *y, Pool *pool) {
    if (n_tok <= 0 || w->rows <= 0) return;
    const TypeTraits *t = type_traits(w->type);
    if (!t) return;
    MatJob j = {.w = w, .k = isa(), .x = x, .n_tok = n_tok, .y = y, .chunk = ROW_ALIGN};
    j.mat = j.k->mat[w->type];
    if (!j.mat) { /* the scalar kernel, with the scalar table's K offsets */
        j.k = &isa_scalar;
        j.mat = scalar_mat[t->act];
    }
    const IsaKernels *k = j.k;
    j.act = t->act == ACT_Q8 ? (const void *)&j.a : (const void *)x;
    long long work = (long long)w->rows * w->cols * n_tok;
    Pool *p = work < MIN_POOL_WORK ? NULL : pool;
    if (t->act == ACT_Q8) {
        act_attach(&j.a, scratch_get(act_layout(&j.a, w->cols, n_tok, k->act_tt[w->type], t->unpack != NULL)));
        if (n_tok >= 4) pool_run(p, pack_job, &j);
        else act_pack(&j.a, k, w->type, x, 0, n_tok);
    }
    int nth = pool_size(p), units = (w->rows + ROW_ALIGN - 1) / ROW_ALIGN;
    int per = units / (nth * CHUNKS_PER_THREAD);
    j.chunk = (per > 1 ? per : 1) * ROW_ALIGN;
    atomic_init(&j.next, 0);
    pool_run(p, mat_job, &j);
}

void matvec(const MatView *w, const float *x, float *y, Pool *pool) { matmul(w, x, 1, y, pool); }

/* ---- elementwise ---- */

void rmsnorm(float *out, const float *x, const float *weight, int n, float eps) {
    const IsaKernels *k = isa();
    (k->rmsnorm ? k->rmsnorm : rmsnorm_ref)(out, x, weight, n, eps);
}

void softmax(float *x, int n) {
    const IsaKernels *k = isa();
    (k->softmax ? k->softmax : softmax_ref)(x, n);
}

void silu_mul(float *gate, const float *up, int n) {
    const IsaKernels *k = isa();
    (k->silu_mul ? k->silu_mul : silu_mul_ref)(gate, up, n);
}

void quantize_act_q8(const float *x, int8_t *q, float *d, int n) {
    QuantBlocksFn quant = isa()->quant ? isa()->quant : quant_blocks_scalar;
    int32_t s[64];
    for (int b = 0; b < n / QK; b += 64) {
        int m = n / QK - b < 64 ? n / QK - b : 64;
        quant(x + (size_t)b * QK, q + (size_t)b * QK, d + b, s, m);
    }
}

int matmul_batch_exact(uint32_t type) {
    const TypeTraits *t = type_traits(type);
    if (t && t->kpanel) return isa()->k_exact > 1 ? isa()->k_exact : 1;
    if (!t || t->unpack) return 1;
    return ACT_TT;
}
