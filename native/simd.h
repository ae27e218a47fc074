/*
 * One vector vocabulary for the per-ISA kernel objects. gemm.c and ops.c are compiled twice, with
 * SAT_ISA=512 (-mavx512f ...) and SAT_ISA=256 (-mavx2 -mfma); every external symbol they define
 * goes through SFX() so the two objects link into one addon, which picks one at run time.
 *
 * VL floats per vector. Tails use masked loads and stores (zero-filled lanes), so every loop has a
 * single body and the lanes of a partial vector compute exactly what full ones do.
 */
#ifndef SAT_SIMD_H
#define SAT_SIMD_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#if SAT_ISA == 512
#define SFX(name) name##_avx512
#define VL 16
typedef __m512 vf;
typedef __mmask16 vmask;
static inline vmask vmask_n(int n) { return (vmask)(n >= 16 ? 0xFFFF : n <= 0 ? 0 : ((1u << n) - 1u)); }
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, x) _mm512_storeu_ps((p), (x))
#define vload_m(p, m) _mm512_maskz_loadu_ps((m), (p))
#define vstore_m(p, x, m) _mm512_mask_storeu_ps((p), (m), (x))
#define vset1(x) _mm512_set1_ps(x)
#define vzero() _mm512_setzero_ps()
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vdiv(a, b) _mm512_div_ps(a, b)
#define vsqrt(a) _mm512_sqrt_ps(a)
#define vmax(a, b) _mm512_max_ps(a, b)
#define vmin(a, b) _mm512_min_ps(a, b)
#define vfma(a, b, c) _mm512_fmadd_ps(a, b, c)   /* a*b + c */
#define vfnma(a, b, c) _mm512_fnmadd_ps(a, b, c) /* c - a*b */
#define vsum(x) _mm512_reduce_add_ps(x)
#define vhmax(x) _mm512_reduce_max_ps(x)
/* Lane i of x where m is set, else y. */
#define vblend_m(m, y, x) _mm512_mask_blend_ps((m), (y), (x))
#define vlt_m(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
#define veq_m(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
/* 2^n for integer-valued n in [-126, 127] (exponent bits). */
static inline vf vpow2i(vf n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
#define vround(x) _mm512_roundscale_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* Lane l of `yes` where mask[l] != 0, else of `no` (reads VL bytes). */
static inline vf vselect_u8(const uint8_t* mask, vf yes, vf no) {
  const __m512i m = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)mask));
  return _mm512_mask_blend_ps(_mm512_test_epi32_mask(m, m), no, yes);
}
#else
#define SFX(name) name##_avx2
#define VL 8
typedef __m256 vf;
typedef __m256 vmask; /* lane masks are float vectors (all ones / zeros), as AVX comparisons give */
static inline vmask vmask_n(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx));
}
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, x) _mm256_storeu_ps((p), (x))
#define vload_m(p, m) _mm256_maskload_ps((p), _mm256_castps_si256(m))
#define vstore_m(p, x, m) _mm256_maskstore_ps((p), _mm256_castps_si256(m), (x))
#define vset1(x) _mm256_set1_ps(x)
#define vzero() _mm256_setzero_ps()
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vdiv(a, b) _mm256_div_ps(a, b)
#define vsqrt(a) _mm256_sqrt_ps(a)
#define vmax(a, b) _mm256_max_ps(a, b)
#define vmin(a, b) _mm256_min_ps(a, b)
#define vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vfnma(a, b, c) _mm256_fnmadd_ps(a, b, c)
static inline float vsum(vf x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float vhmax(vf x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#define vblend_m(m, y, x) _mm256_blendv_ps((y), (x), (m))
#define vlt_m(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define veq_m(a, b) _mm256_cmp_ps((a), (b), _CMP_EQ_OQ)
static inline vf vpow2i(vf n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
#define vround(x) _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
static inline vf vselect_u8(const uint8_t* mask, vf yes, vf no) {
  const __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)mask));
  const __m256 zero = _mm256_castsi256_ps(_mm256_cmpeq_epi32(m, _mm256_setzero_si256()));
  return _mm256_blendv_ps(yes, no, zero);
}
#endif

/*
 * e^x for float32 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial (Cephes expf
 * coefficients), 2^n from the exponent bits. Relative error ~2 ulp on [-87, 88]; inputs are clamped
 * there, so e^x underflows to ~1e-38 instead of 0 and saturates at ~1.6e38 instead of +inf. Callers
 * that need exact zeros (masked attention) never pass those lanes.
 */
static inline vf vexp(vf x) {
  x = vmin(vmax(x, vset1(-87.3f)), vset1(88.3f));
  const vf n = vround(vmul(x, vset1(1.44269504088896341f)));
  vf r = vfnma(n, vset1(0.693359375f), x);
  r = vfnma(n, vset1(-2.12194440e-4f), r);
  vf p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
  return vmul(p, vpow2i(n));
}

#endif
