/* The zmm intrinsics that kernels/x86_avx512*.c use, emulated in C on an AVX2 machine:
 * `make zmm-emu-test` builds those files with this header forced in (-include) and the kernel
 * table's CPU check claiming AVX-512 VNNI (kernels/dispatch.c, PHI_ZMM_EMU), then runs the
 * kernel tests, which compare the avx512vnni kernels with the scalar reference and with
 * themselves across batch sizes and thread counts. CI's machines and many developers' have no
 * AVX-512, so without this those kernels would go untested there.
 *
 * Every function follows the instruction's definition in Intel's manual lane by lane: integer
 * results are the instruction's exactly, float ones round as it does (once per add, multiply or
 * convert; fused multiply-adds through the AVX2 FMA of each 256-bit half; the horizontal sum in
 * the order GCC's _mm512_reduce_add_ps adds). The emulated files build with -ffp-contract=off,
 * so no separate multiply and add are fused here; a native -O2 build may fuse some, so the
 * last bits can differ from an AVX-512 CPU's, and the tests compare within one build (a kernel
 * with the scalar reference within tolerances, and with itself bit for bit across batch sizes,
 * threads and panel pairs). Also vpdpbusd on ymm (AVX-VNNI, x86_avx2.c's avxvnni table) and the
 * AMX tile instructions (x86_amx.c, the amx table, which the build then chooses). Only
 * what the kernel files use is here; a new intrinsic there fails this build until it is added.
 * Speed means nothing here. */
#ifndef PHI_ZMM_EMU_H
#define PHI_ZMM_EMU_H
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define PHI_ZMM_EMU 1
#define ZTGT __attribute__((target("avx2,fma,f16c")))
#define ZKEEP(a) ((void)0)
#define ZKEEP2(a, b) ((void)0)
#define ZE static inline __attribute__((always_inline, unused)) ZTGT

typedef union {
    int8_t i8[64];
    uint8_t u8[64];
    int16_t i16[32];
    uint16_t u16[32];
    int32_t i32[16];
    uint32_t u32[16];
    int64_t i64[8];
    uint64_t u64[8];
    float f32[16];
    __m256i y[2];
    __m256 yf[2];
    __m128i x[4];
    __m128 xf[4];
} phi_zv;
/* One type for both: the kernels never convert between them without an intrinsic. */
#define __m512i phi_zv
#define __m512 phi_zv

#define ZLANES(n) for (int i = 0; i < (n); i++)

ZE phi_zv ze_zero(void) {
    phi_zv r;
    memset(&r, 0, sizeof r);
    return r;
}

/* ---- lane-wise integer and float arithmetic ---- */
#define ZE_BIN(name, field, n, expr)                         \
    ZE phi_zv name(phi_zv a, phi_zv b) {                     \
        phi_zv r;                                            \
        ZLANES(n) r.field[i] = (expr);                       \
        return r;                                            \
    }
ZE_BIN(ze_add_epi32, u32, 16, a.u32[i] + b.u32[i])
ZE_BIN(ze_sub_epi32, u32, 16, a.u32[i] - b.u32[i])
ZE_BIN(ze_sub_epi8, u8, 64, (uint8_t)(a.u8[i] - b.u8[i]))
ZE_BIN(ze_mullo_epi32, u32, 16, (uint32_t)((uint64_t)a.u32[i] * b.u32[i]))
ZE_BIN(ze_and, u64, 8, a.u64[i] & b.u64[i])
ZE_BIN(ze_or, u64, 8, a.u64[i] | b.u64[i])
ZE_BIN(ze_xor, u64, 8, a.u64[i] ^ b.u64[i])
ZE_BIN(ze_add_ps, f32, 16, a.f32[i] + b.f32[i])
ZE_BIN(ze_sub_ps, f32, 16, a.f32[i] - b.f32[i])
ZE_BIN(ze_mul_ps, f32, 16, a.f32[i] * b.f32[i])
ZE_BIN(ze_rolv_epi64, u64, 8, (b.u64[i] & 63) ? (a.u64[i] << (b.u64[i] & 63)) | (a.u64[i] >> (64 - (b.u64[i] & 63))) : a.u64[i])
ZE_BIN(ze_srlv_epi64, u64, 8, b.u64[i] > 63 ? 0 : a.u64[i] >> b.u64[i])
#undef ZE_BIN

/* fused: one rounding, as vfmadd231ps / vfnmadd231ps */
ZE phi_zv ze_fmadd_ps(phi_zv a, phi_zv b, phi_zv c) {
    phi_zv r;
    for (int h = 0; h < 2; h++) r.yf[h] = _mm256_fmadd_ps(a.yf[h], b.yf[h], c.yf[h]);
    return r;
}
ZE phi_zv ze_fnmadd_ps(phi_zv a, phi_zv b, phi_zv c) {
    phi_zv r;
    for (int h = 0; h < 2; h++) r.yf[h] = _mm256_fnmadd_ps(a.yf[h], b.yf[h], c.yf[h]);
    return r;
}

/* vpdpbusd: each int32 lane plus its 4 unsigned bytes of a times the 4 signed bytes of b, wrapping */
ZE phi_zv ze_dpbusd_epi32(phi_zv src, phi_zv a, phi_zv b) {
    phi_zv r;
    ZLANES(16) {
        int32_t s = 0;
        for (int k = 0; k < 4; k++) s += (int32_t)a.u8[4 * i + k] * (int32_t)b.i8[4 * i + k];
        r.u32[i] = src.u32[i] + (uint32_t)s;
    }
    return r;
}

/* AVX-VNNI's vpdpbusd on ymm (x86_avx2.c's avxvnni table), the same per lane */
ZE __m256i ze_dpbusd_avx_epi32(__m256i src, __m256i a, __m256i b) {
    phi_zv s = ze_zero(), x = ze_zero(), y = ze_zero();
    s.y[0] = src, x.y[0] = a, y.y[0] = b;
    return ze_dpbusd_epi32(s, x, y).y[0];
}

/* ---- shifts by an immediate (counts past the width give 0; arithmetic: the sign) ---- */
#define ZE_SH(name, field, n, bits, expr)                    \
    ZE phi_zv name(phi_zv a, unsigned c) {                   \
        phi_zv r;                                            \
        ZLANES(n) r.field[i] = c >= (bits) ? 0 : (expr);     \
        return r;                                            \
    }
ZE_SH(ze_slli_epi16, u16, 32, 16, (uint16_t)(a.u16[i] << c))
ZE_SH(ze_srli_epi16, u16, 32, 16, (uint16_t)(a.u16[i] >> c))
ZE_SH(ze_slli_epi32, u32, 16, 32, a.u32[i] << c)
ZE_SH(ze_srli_epi32, u32, 16, 32, a.u32[i] >> c)
ZE_SH(ze_slli_epi64, u64, 8, 64, a.u64[i] << c)
ZE_SH(ze_srli_epi64, u64, 8, 64, a.u64[i] >> c)
#undef ZE_SH
ZE phi_zv ze_srai_epi32(phi_zv a, unsigned c) {
    phi_zv r;
    ZLANES(16) r.i32[i] = a.i32[i] < 0 ? ~(int32_t)(~(uint32_t)a.i32[i] >> (c > 31 ? 31 : c)) : a.i32[i] >> (c > 31 ? 31 : c);
    return r;
}

/* ---- conversions ---- */
ZE phi_zv ze_cvtepi32_ps(phi_zv a) {
    phi_zv r;
    for (int h = 0; h < 2; h++) r.yf[h] = _mm256_cvtepi32_ps(a.y[h]); /* rounds to nearest as vcvtdq2ps */
    return r;
}
ZE __m256i ze_cvtepi32_epi16(phi_zv a) { /* vpmovdw: truncation */
    int16_t o[16];
    ZLANES(16) o[i] = (int16_t)(uint16_t)a.u32[i];
    __m256i r;
    memcpy(&r, o, 32);
    return r;
}
ZE phi_zv ze_cvtepi8_epi32(__m128i a) {
    int8_t b[16];
    memcpy(b, &a, 16);
    phi_zv r;
    ZLANES(16) r.i32[i] = b[i];
    return r;
}
ZE phi_zv ze_cvtph_ps(__m256i a) {
    phi_zv r;
    r.yf[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(a));
    r.yf[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1));
    return r;
}

/* ---- loads and stores (the masked ones touch only the lanes their mask sets) ---- */
ZE phi_zv ze_loadu(const void *p) {
    phi_zv r;
    memcpy(&r, p, 64);
    return r;
}
ZE void ze_storeu(void *p, phi_zv a) { memcpy(p, &a, 64); }
ZE void ze_mask_storeu_ps(void *p, __mmask16 k, phi_zv a) {
    ZLANES(16) if ((k >> i) & 1) memcpy((char *)p + 4 * i, &a.f32[i], 4);
}
ZE phi_zv ze_maskz_loadu_ps(__mmask16 k, const void *p) {
    phi_zv r = ze_zero();
    ZLANES(16) if ((k >> i) & 1) memcpy(&r.f32[i], (const char *)p + 4 * i, 4);
    return r;
}
ZE __m256i ze_maskz_loadu_epi16(__mmask16 k, const void *p) {
    uint16_t o[16] = {0};
    ZLANES(16) if ((k >> i) & 1) memcpy(&o[i], (const char *)p + 2 * i, 2);
    __m256i r;
    memcpy(&r, o, 32);
    return r;
}
ZE phi_zv ze_i32gather_epi32(phi_zv idx, const void *base, int scale) {
    phi_zv r;
    ZLANES(16) memcpy(&r.i32[i], (const char *)base + (int64_t)idx.i32[i] * scale, 4);
    return r;
}

/* ---- set ---- */
ZE phi_zv ze_set1_epi32(int v) {
    phi_zv r;
    ZLANES(16) r.i32[i] = v;
    return r;
}
ZE phi_zv ze_set1_epi8(char v) {
    phi_zv r;
    memset(&r, (unsigned char)v, 64);
    return r;
}
ZE phi_zv ze_set1_ps(float v) {
    phi_zv r;
    ZLANES(16) r.f32[i] = v;
    return r;
}
ZE phi_zv ze_setr_epi32(int e0, int e1, int e2, int e3, int e4, int e5, int e6, int e7, int e8, int e9,
                        int e10, int e11, int e12, int e13, int e14, int e15) {
    phi_zv r;
    int32_t v[16] = {e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15};
    memcpy(&r, v, 64);
    return r;
}
ZE phi_zv ze_setr_epi64(long long e0, long long e1, long long e2, long long e3, long long e4, long long e5,
                        long long e6, long long e7) {
    phi_zv r;
    int64_t v[8] = {e0, e1, e2, e3, e4, e5, e6, e7};
    memcpy(&r, v, 64);
    return r;
}

/* ---- casts, inserts and broadcasts of 128- and 256-bit parts (a cast's upper part is
 * undefined on the CPU: zero here, and no kernel may read it) ---- */
ZE phi_zv ze_castps256_ps512(__m256 a) {
    phi_zv r = ze_zero();
    r.yf[0] = a;
    return r;
}
ZE __m128 ze_castps512_ps128(phi_zv a) { return a.xf[0]; }
ZE phi_zv ze_castsi128_si512(__m128i a) {
    phi_zv r = ze_zero();
    r.x[0] = a;
    return r;
}
ZE phi_zv ze_castsi256_si512(__m256i a) {
    phi_zv r = ze_zero();
    r.y[0] = a;
    return r;
}
ZE phi_zv ze_inserti32x4(phi_zv a, __m128i b, int imm) {
    a.x[imm & 3] = b;
    return a;
}
ZE phi_zv ze_inserti64x4(phi_zv a, __m256i b, int imm) {
    a.y[imm & 1] = b;
    return a;
}
ZE phi_zv ze_broadcast_i32x4(__m128i a) {
    phi_zv r;
    for (int l = 0; l < 4; l++) r.x[l] = a;
    return r;
}
ZE phi_zv ze_broadcast_i64x4(__m256i a) {
    phi_zv r;
    r.y[0] = r.y[1] = a;
    return r;
}

/* ---- permutes and shuffles ---- */
ZE phi_zv ze_shuffle_epi8(phi_zv a, phi_zv b) { /* within each 128-bit lane */
    phi_zv r;
    ZLANES(64) r.u8[i] = (b.u8[i] & 0x80) ? 0 : a.u8[(i & ~15) + (b.u8[i] & 15)];
    return r;
}
ZE phi_zv ze_permute_ps(phi_zv a, int imm) { /* within each 128-bit lane */
    phi_zv r;
    ZLANES(16) r.f32[i] = a.f32[(i & ~3) + ((imm >> (2 * (i & 3))) & 3)];
    return r;
}
ZE phi_zv ze_permutex2var_epi32(phi_zv a, phi_zv idx, phi_zv b) {
    phi_zv r;
    ZLANES(16) r.u32[i] = (idx.u32[i] & 16) ? b.u32[idx.u32[i] & 15] : a.u32[idx.u32[i] & 15];
    return r;
}
ZE phi_zv ze_permutexvar_ps(phi_zv idx, phi_zv a) {
    phi_zv r;
    ZLANES(16) r.f32[i] = a.f32[idx.u32[i] & 15];
    return r;
}
ZE phi_zv ze_shuffle_f32x4(phi_zv a, phi_zv b, int imm) {
    phi_zv r;
    r.xf[0] = a.xf[imm & 3], r.xf[1] = a.xf[(imm >> 2) & 3];
    r.xf[2] = b.xf[(imm >> 4) & 3], r.xf[3] = b.xf[(imm >> 6) & 3];
    return r;
}
/* vpunpck[lh]dq / [lh]qdq: interleave the low or high halves of each 128-bit lane */
ZE phi_zv ze_unpack32(phi_zv a, phi_zv b, int hi) {
    phi_zv r;
    for (int l = 0; l < 4; l++)
        for (int k = 0; k < 2; k++) r.u32[4 * l + 2 * k] = a.u32[4 * l + 2 * hi + k], r.u32[4 * l + 2 * k + 1] = b.u32[4 * l + 2 * hi + k];
    return r;
}
ZE phi_zv ze_unpack64(phi_zv a, phi_zv b, int hi) {
    phi_zv r;
    for (int l = 0; l < 4; l++) r.u64[2 * l] = a.u64[2 * l + hi], r.u64[2 * l + 1] = b.u64[2 * l + hi];
    return r;
}

/* GCC's _mm512_reduce_add_ps: the 256-bit halves added (high + low), then the 128-bit halves of
 * that, then elements 2,3 onto 0,1, then element 1 onto 0. */
ZE float ze_reduce_add_ps(phi_zv a) {
    float t3[8], t6[4], t8[2];
    for (int i = 0; i < 8; i++) t3[i] = a.f32[8 + i] + a.f32[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[4 + i] + t3[i];
    t8[0] = t6[0] + t6[2], t8[1] = t6[1] + t6[3];
    return t8[0] + t8[1];
}

/* the intrinsics' names to these (some are macros in GCC's headers) */
#undef _mm512_add_epi32
#define _mm512_add_epi32 ze_add_epi32
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 ze_sub_epi32
#undef _mm512_sub_epi8
#define _mm512_sub_epi8 ze_sub_epi8
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 ze_mullo_epi32
#undef _mm512_and_si512
#define _mm512_and_si512 ze_and
#undef _mm512_or_si512
#define _mm512_or_si512 ze_or
#undef _mm512_xor_si512
#define _mm512_xor_si512 ze_xor
#undef _mm512_add_ps
#define _mm512_add_ps ze_add_ps
#undef _mm512_sub_ps
#define _mm512_sub_ps ze_sub_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps ze_mul_ps
#undef _mm512_rolv_epi64
#define _mm512_rolv_epi64 ze_rolv_epi64
#undef _mm512_srlv_epi64
#define _mm512_srlv_epi64 ze_srlv_epi64
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps ze_fmadd_ps
#undef _mm512_fnmadd_ps
#define _mm512_fnmadd_ps ze_fnmadd_ps
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 ze_dpbusd_epi32
#undef _mm256_dpbusd_avx_epi32
#define _mm256_dpbusd_avx_epi32 ze_dpbusd_avx_epi32
#undef _mm512_slli_epi16
#define _mm512_slli_epi16 ze_slli_epi16
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 ze_srli_epi16
#undef _mm512_slli_epi32
#define _mm512_slli_epi32 ze_slli_epi32
#undef _mm512_srli_epi32
#define _mm512_srli_epi32 ze_srli_epi32
#undef _mm512_slli_epi64
#define _mm512_slli_epi64 ze_slli_epi64
#undef _mm512_srli_epi64
#define _mm512_srli_epi64 ze_srli_epi64
#undef _mm512_srai_epi32
#define _mm512_srai_epi32 ze_srai_epi32
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps ze_cvtepi32_ps
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16 ze_cvtepi32_epi16
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 ze_cvtepi8_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps ze_cvtph_ps
#undef _mm512_load_ps
#define _mm512_load_ps ze_loadu
#undef _mm512_loadu_ps
#define _mm512_loadu_ps ze_loadu
#undef _mm512_load_si512
#define _mm512_load_si512 ze_loadu
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 ze_loadu
#undef _mm512_store_ps
#define _mm512_store_ps ze_storeu
#undef _mm512_storeu_ps
#define _mm512_storeu_ps ze_storeu
#undef _mm512_store_si512
#define _mm512_store_si512 ze_storeu
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps ze_mask_storeu_ps
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps ze_maskz_loadu_ps
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 ze_maskz_loadu_epi16
#undef _mm512_i32gather_epi32
#define _mm512_i32gather_epi32 ze_i32gather_epi32
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 ze_set1_epi32
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 ze_set1_epi8
#undef _mm512_set1_ps
#define _mm512_set1_ps ze_set1_ps
#undef _mm512_setr_epi32
#define _mm512_setr_epi32 ze_setr_epi32
#undef _mm512_setr_epi64
#define _mm512_setr_epi64 ze_setr_epi64
#undef _mm512_setzero_ps
#define _mm512_setzero_ps ze_zero
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 ze_zero
#undef _mm512_castps256_ps512
#define _mm512_castps256_ps512 ze_castps256_ps512
#undef _mm512_zextps256_ps512
#define _mm512_zextps256_ps512 ze_castps256_ps512
#undef _mm512_castps512_ps128
#define _mm512_castps512_ps128 ze_castps512_ps128
#undef _mm512_castsi128_si512
#define _mm512_castsi128_si512 ze_castsi128_si512
#undef _mm512_castsi256_si512
#define _mm512_castsi256_si512 ze_castsi256_si512
#undef _mm512_inserti32x4
#define _mm512_inserti32x4 ze_inserti32x4
#undef _mm512_inserti64x4
#define _mm512_inserti64x4 ze_inserti64x4
#undef _mm512_broadcast_i32x4
#define _mm512_broadcast_i32x4 ze_broadcast_i32x4
#undef _mm512_broadcast_i64x4
#define _mm512_broadcast_i64x4 ze_broadcast_i64x4
#undef _mm512_shuffle_epi8
#define _mm512_shuffle_epi8 ze_shuffle_epi8
#undef _mm512_permute_ps
#define _mm512_permute_ps ze_permute_ps
#undef _mm512_permutex2var_epi32
#define _mm512_permutex2var_epi32 ze_permutex2var_epi32
#undef _mm512_permutexvar_ps
#define _mm512_permutexvar_ps ze_permutexvar_ps
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 ze_shuffle_f32x4
#undef _mm512_unpacklo_epi32
#define _mm512_unpacklo_epi32(a, b) ze_unpack32(a, b, 0)
#undef _mm512_unpackhi_epi32
#define _mm512_unpackhi_epi32(a, b) ze_unpack32(a, b, 1)
#undef _mm512_unpacklo_epi64
#define _mm512_unpacklo_epi64(a, b) ze_unpack64(a, b, 0)
#undef _mm512_unpackhi_epi64
#define _mm512_unpackhi_epi64(a, b) ze_unpack64(a, b, 1)
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps ze_reduce_add_ps

/* ---- AMX-INT8 (kernels/x86_amx.c calls these for its tile instructions): eight tile registers
 * of up to 16 rows x 64 bytes per thread, shaped by the last configuration as ldtilecfg shapes
 * them (palette 1: bytes per row at offset 16 + 2t, rows at 48 + t); tileloadd zeroes what lies
 * past a tile's shape, tdpbssd adds to each int32 of C the four signed products of its 4-byte
 * group (tdpbsud: B's bytes unsigned), wrapping as the instruction does. */
typedef struct {
    int rows, colsb;
    uint8_t d[16][64];
} phi_ztile;
static _Thread_local phi_ztile ze_tiles[8];

static inline __attribute__((unused)) void amx_emu_config(const void *cfg) {
    const uint8_t *c = cfg;
    for (int t = 0; t < 8; t++) {
        ze_tiles[t].colsb = c[16 + 2 * t] | c[17 + 2 * t] << 8;
        ze_tiles[t].rows = c[48 + t];
        memset(ze_tiles[t].d, 0, sizeof ze_tiles[t].d);
    }
}
static inline __attribute__((unused)) void amx_emu_release(void) { memset(ze_tiles, 0, sizeof ze_tiles); }
static inline __attribute__((unused)) void amx_emu_load(int t, const void *p, long stride) {
    phi_ztile *z = &ze_tiles[t];
    memset(z->d, 0, sizeof z->d);
    for (int r = 0; r < z->rows; r++) memcpy(z->d[r], (const uint8_t *)p + r * stride, (size_t)z->colsb);
}
static inline __attribute__((unused)) void amx_emu_store(int t, void *p, long stride) {
    phi_ztile *z = &ze_tiles[t];
    for (int r = 0; r < z->rows; r++) memcpy((uint8_t *)p + r * stride, z->d[r], (size_t)z->colsb);
}
static inline __attribute__((unused)) void amx_emu_zero(int t) { memset(ze_tiles[t].d, 0, sizeof ze_tiles[t].d); }
static inline __attribute__((unused)) void amx_emu_dp(int c, int a, int b, int b_unsigned) {
    phi_ztile *C = &ze_tiles[c], *A = &ze_tiles[a], *B = &ze_tiles[b];
    for (int m = 0; m < C->rows; m++)
        for (int n = 0; n < C->colsb / 4; n++) {
            uint32_t acc;
            memcpy(&acc, C->d[m] + 4 * n, 4);
            for (int k = 0; k < A->colsb / 4; k++)
                for (int i = 0; i < 4; i++)
                    acc += (uint32_t)((int32_t)(int8_t)A->d[m][4 * k + i] *
                                      (b_unsigned ? (int32_t)B->d[k][4 * n + i] : (int32_t)(int8_t)B->d[k][4 * n + i]));
            memcpy(C->d[m] + 4 * n, &acc, 4);
        }
}
/* tdpbssd: signed x signed; tdpbsud: signed A x unsigned B */
static inline __attribute__((unused)) void amx_emu_dpbssd(int c, int a, int b) { amx_emu_dp(c, a, b, 0); }
static inline __attribute__((unused)) void amx_emu_dpbsud(int c, int a, int b) { amx_emu_dp(c, a, b, 1); }

#endif
#endif
