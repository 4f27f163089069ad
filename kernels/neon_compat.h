/* The AArch64-only NEON intrinsics that kernels/arm_neon.c uses, written for 32-bit ARM
 * (ARMv7-A with NEON and VFPv4: -mfpu=neon-vfpv4, which also brings the float16 conversions and
 * vfmaq_f32). On AArch64 this header adds nothing: the file uses the native instructions.
 *
 * Each shim is a macro to a phi_-prefixed function, so a compiler whose armv7 arm_neon.h
 * declares some of these names one day sees no second definition. Exactness, where the kernels
 * are compared bit for bit with the scalar reference:
 *   - horizontal sums and maxima fold in the order of AArch64's pairwise instructions;
 *   - vrndnq_f32 rounds to nearest, ties to even, by adding and subtracting 1.5 * 2^23 (the
 *     NEON unit always rounds to nearest): exact for |x| < 2^22 only (exp4's range reduction);
 *   - vdivq_f32 is a reciprocal estimate and two Newton steps, within 2 ulp (silu);
 *   - ARMv7 NEON flushes denormal inputs and results to zero (AArch64 does not): the activation
 *     quantization handles that case itself (kernels/arm_neon.c). */
#ifndef PHI_NEON_COMPAT_H
#define PHI_NEON_COMPAT_H

#include <arm_neon.h>

#if !defined(__aarch64__)

#define NCI static inline __attribute__((always_inline))

NCI int16x8_t phi_vmull_high_s8(int8x16_t a, int8x16_t b) {
    return vmull_s8(vget_high_s8(a), vget_high_s8(b));
}
NCI int16x8_t phi_vmlal_high_s8(int16x8_t acc, int8x16_t a, int8x16_t b) {
    return vmlal_s8(acc, vget_high_s8(a), vget_high_s8(b));
}
/* [a0 + a1, a2 + a3, b0 + b1, b2 + b3] */
NCI int32x4_t phi_vpaddq_s32(int32x4_t a, int32x4_t b) {
    return vcombine_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)),
                        vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
}
NCI int32x4_t phi_vtrn1q_s32(int32x4_t a, int32x4_t b) { return vtrnq_s32(a, b).val[0]; }
NCI int32x4_t phi_vtrn2q_s32(int32x4_t a, int32x4_t b) { return vtrnq_s32(a, b).val[1]; }
NCI int64x2_t phi_vtrn1q_s64(int64x2_t a, int64x2_t b) {
    return vcombine_s64(vget_low_s64(a), vget_low_s64(b));
}
NCI int64x2_t phi_vtrn2q_s64(int64x2_t a, int64x2_t b) {
    return vcombine_s64(vget_high_s64(a), vget_high_s64(b));
}
NCI int32_t phi_vaddvq_s32(int32x4_t v) {
    int32x2_t p = vpadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(p, p), 0);
}
/* (v0 + v1) + (v2 + v3), as faddp twice */
NCI float phi_vaddvq_f32(float32x4_t v) {
    float32x2_t p = vpadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(p, p), 0);
}
NCI float phi_vmaxvq_f32(float32x4_t v) {
    float32x2_t p = vpmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(p, p), 0);
}
NCI float32x4_t phi_vfmaq_n_f32(float32x4_t a, float32x4_t b, float c) {
    return vfmaq_f32(a, b, vdupq_n_f32(c));
}
NCI float32x4_t phi_vfmsq_n_f32(float32x4_t a, float32x4_t b, float c) {
    return vfmsq_f32(a, b, vdupq_n_f32(c));
}
NCI float32x4_t phi_vrndnq_f32(float32x4_t x) {
    const float32x4_t m = vdupq_n_f32(12582912.0f);
    return vsubq_f32(vaddq_f32(x, m), m);
}
NCI float32x4_t phi_vdivq_f32(float32x4_t a, float32x4_t b) {
    float32x4_t r = vrecpeq_f32(b);
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    return vmulq_f32(a, r);
}
NCI float32x4_t phi_vcvt_high_f32_f16(float16x8_t h) { return vcvt_f32_f16(vget_high_f16(h)); }
/* A 16-entry table lookup per byte (indices < 16 here), as two 8-byte vtbl2 lookups. */
NCI uint8x16_t phi_vqtbl1q_u8(uint8x16_t t, uint8x16_t i) {
    uint8x8x2_t t2 = {{vget_low_u8(t), vget_high_u8(t)}};
    return vcombine_u8(vtbl2_u8(t2, vget_low_u8(i)), vtbl2_u8(t2, vget_high_u8(i)));
}
NCI int16x8_t phi_vmovl_high_s8(int8x16_t a) { return vmovl_s8(vget_high_s8(a)); }
NCI int32x4_t phi_vmovl_high_s16(int16x8_t a) { return vmovl_s16(vget_high_s16(a)); }

#define vmull_high_s8 phi_vmull_high_s8
#define vmovl_high_s8 phi_vmovl_high_s8
#define vmovl_high_s16 phi_vmovl_high_s16
#define vmlal_high_s8 phi_vmlal_high_s8
#define vpaddq_s32 phi_vpaddq_s32
#define vtrn1q_s32 phi_vtrn1q_s32
#define vtrn2q_s32 phi_vtrn2q_s32
#define vtrn1q_s64 phi_vtrn1q_s64
#define vtrn2q_s64 phi_vtrn2q_s64
#define vaddvq_s32 phi_vaddvq_s32
#define vaddvq_f32 phi_vaddvq_f32
#define vmaxvq_f32 phi_vmaxvq_f32
#define vfmaq_n_f32 phi_vfmaq_n_f32
#define vfmsq_n_f32 phi_vfmsq_n_f32
#define vrndnq_f32 phi_vrndnq_f32
#define vdivq_f32 phi_vdivq_f32
#define vcvt_high_f32_f16 phi_vcvt_high_f32_f16
#define vqtbl1q_u8 phi_vqtbl1q_u8

#undef NCI
#endif /* !__aarch64__ */

#endif
