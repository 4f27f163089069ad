/* What bounds an int8 tile on an AVX-512 VNNI core (`make bench-ports`, x86-64 only): the rate
 * of vpdpbusd, in G instructions/s on one core, for the instruction mixes of
 * kernels/x86_avx512.c's tiles. Each loop runs 64 vpdpbusd in 8 independent chains per
 * iteration (a block of 8 tokens) and adds what a tile adds beside them:
 *   peak          register operands, 12 chains: the core's vpdpbusd rate
 *   8 chains      register operands: what the chain count of a tile leaves
 *   bcast         each vpdpbusd loads its 4 activation bytes (embedded broadcast): the
 *                 one-panel tile's form
 *   bcast + 24 ld and 24 more loads (weights, scales, offsets: the one-panel tile's ~89 per block)
 *   8 chains + 16 float  a multiply and an FMA per 8 vpdpbusd (the Q4/Q8 scale work)
 * Read against each other they say whether loads (2 per cycle on the Zen 5 class host) or the
 * float work on vpdpbusd's pipes bound a tile; docs/PORTING.md (speed model) has the figures. */
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx512vnni")))
#define N 64000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int buf[2048] __attribute__((aligned(64)));

#define R(a) __asm__ volatile("vpdpbusd %1, %2, %0" : "+v"(a) : "v"(x), "v"(w));
#define B(a, o) __asm__ volatile("vpdpbusd %1%{1to16%}, %2, %0" : "+v"(a) : "m"(buf[o]), "v"(w));
#define LD(t, o) __asm__ volatile("vmovdqu64 %1, %0" : "=v"(t) : "m"(*(const __m512i *)(const void *)&buf[1024 + 16 * (o)]));
#define FMA(t) __asm__ volatile("vfmadd231ps %1, %1, %0" : "+v"(t) : "v"(g));
#define MUL(t) __asm__ volatile("vmulps %1, %0, %0" : "+v"(t) : "v"(g));
#define R8 R(a0) R(a1) R(a2) R(a3) R(a4) R(a5) R(a6) R(a7)
#define B8(o) B(a0, o) B(a1, o + 8) B(a2, o + 16) B(a3, o + 24) B(a4, o + 32) B(a5, o + 40) B(a6, o + 48) B(a7, o + 56)

static TGT void run(void) {
    __m512i a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, t0, t1, t2, t3;
    __m512i w = _mm512_set1_epi8(3), x = _mm512_set1_epi8(1);
    __m512 g = _mm512_set1_ps(1.0f), f0 = _mm512_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = t0 = t1 = t2 = t3 = _mm512_setzero_si512();
    static const char *names[] = {"peak (12 chains)", "8 chains", "bcast", "bcast + 24 loads", "8 chains + 16 float"};
    for (int round = 0; round < 2; round++)
        for (int v = 0; v < 5; v++) {
            double t = now();
            for (long i = 0; i < N / 64; i++) {
                if (v == 0) {
                    for (int k = 0; k < 5; k++) { R8 R(a8) R(a9) R(a10) R(a11) }
                    R(a0) R(a1) R(a2) R(a3)
                } else if (v == 1 || v == 4) {
                    R8 R8 R8 R8 R8 R8 R8 R8
                } else {
                    B8(0) B8(1) B8(2) B8(3) B8(4) B8(5) B8(6) B8(7)
                }
                if (v == 3) {
                    LD(t0, 0) LD(t1, 1) LD(t2, 2) LD(t3, 3) LD(t0, 4) LD(t1, 5) LD(t2, 6) LD(t3, 7)
                    LD(t0, 8) LD(t1, 9) LD(t2, 10) LD(t3, 11) LD(t0, 12) LD(t1, 13) LD(t2, 14) LD(t3, 15)
                    LD(t0, 16) LD(t1, 17) LD(t2, 18) LD(t3, 19) LD(t0, 20) LD(t1, 21) LD(t2, 22) LD(t3, 23)
                }
                if (v == 4) {
                    FMA(f0) FMA(f1) FMA(f2) FMA(f3) FMA(f0) FMA(f1) FMA(f2) FMA(f3)
                    MUL(f0) MUL(f1) MUL(f2) MUL(f3) MUL(f0) MUL(f1) MUL(f2) MUL(f3)
                }
            }
            t = now() - t;
            if (round) printf("%-22s %5.2f G vpdpbusd/s\n", names[v], (double)(N / 64 * 64) / t / 1e9);
        }
}

int main(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni")) {
        printf("bench_ports: this CPU has no AVX-512 VNNI\n");
        return 0;
    }
    run();
    return 0;
}
#else
int main(void) {
    printf("bench_ports: x86-64 only\n");
    return 0;
}
#endif
