/*
 * What each per-ISA object (gemm.c + ops.c compiled with SAT_ISA=512 or 256) hands the addon: a
 * table of operations. Every operation reads its arguments from an array of doubles (tensor
 * arguments are byte offsets from `base`, the start of the engine's heap; integers and scalars are
 * plain values), so a call from JavaScript is one store per argument plus one N-API call.
 * The op codes are mirrored in src/engine/kernels/native.ts (NATIVE_OPS); keep the two in step.
 */
#ifndef SAT_KERNELS_H
#define SAT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum {
  OP_GEMM,            /* transA, transB, M, N, K, A, B, C, accumulate, bias (0 = none) */
  OP_BIAS_GRAD,       /* dbias (OC) += Σ_n dout (N, OC): dbias, dout, N, OC */
  OP_LAYERNORM_FWD,   /* out, mean, rstd, inp, weight, bias, N, C, eps */
  OP_LAYERNORM_BWD,   /* dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C */
  OP_RMSNORM_FWD,     /* out, rstd, inp, weight, N, C, eps */
  OP_RMSNORM_BWD,     /* dinp, dweight, dout, inp, weight, rstd, N, C */
  OP_GELU_FWD,        /* out, inp, n */
  OP_GELU_BWD,        /* dinp, inp, out, dout, n (from the saved output) */
  OP_SWIGLU_FWD,      /* out, gate, up, n */
  OP_SWIGLU_BWD,      /* dgate, dup, dout, gate, up, n */
  OP_ADD,             /* out, a, b, n */
  OP_ACCUMULATE,      /* dst, src, n */
  OP_EMBED_FWD,       /* out, ids (int32), table, N, C, add (0: out = row, 1: out += row) */
  OP_EMBED_BWD,       /* dtable, dout, ids (int32), N, C */
  OP_ROPE,            /* x, pos (int32), cos (f64), sin (f64), N, H, hd, inverse */
  OP_ATTN_FWD,        /* out, att, q, k, v, B, T, Hq, Hkv, hd */
  OP_ATTN_BWD,        /* dq, dk, dv, dout, att, q, k, v, B, T, Hq, Hkv, hd */
  OP_ATTN_DECODE,     /* out, q, kc, vc, lengths (int32), active (int32), B, Tmax, Hq, Hkv, hd */
  OP_KV_WRITE,        /* kc, vc, k, v, pos (int32), active (int32), B, Tmax, Hkv, hd */
  OP_COPY_ROWS,       /* dst, dstStride, src, srcStride, rows, cols, add (floats, strides in floats) */
  OP_ZERO,            /* x, n */
  OP_CROSS_ENTROPY,   /* losses, dlogits, logits, targets (int32), N, V, dscale, logp (0 = none) */
  OP_SAMPLE,          /* logits (one row), V, invTemp, u ∈ [0,1) -> args[14] = token, args[15] = log-prob */
  OP_COUNT
};

/* One operation: args as documented above, base = heap start. Results, if any, go back into args. */
typedef void (*sat_op)(double* args, char* base);

typedef struct {
  const char* isa;
  sat_op ops[OP_COUNT];
  /* AdamW over n floats in float32 arithmetic (torch's order): p, g, m, v, mask (may be NULL). */
  void (*adamw)(float* p, const float* g, float* m, float* v, const uint8_t* mask, size_t n, double lr,
                double beta1, double beta2, double eps, double decay, double stepSize, double bc2Sqrt);
  /* Σ x² in float64 over fixed blocks (same bits for any thread count). */
  double (*sumsq)(const float* x, size_t n);
  void (*scale)(float* x, size_t n, double s); /* x = (float)(x · s), as JS does */
  /* GFLOP/s of independent FMA chains on this thread for about `ms` milliseconds. */
  double (*fma_peak)(double ms);
} sat_isa_table;

extern const sat_isa_table sat_table_avx512;
extern const sat_isa_table sat_table_avx2;

/* gemm.c, used by ops.c for products inside fused ops. */
#define SAT_GEMM_DECL(isa)                                                                                  \
  void sat_gemm_##isa(int transA, int transB, int M, int N, int K, const float* A, const float* B, float* C, \
                      int accumulate, const float* bias);
SAT_GEMM_DECL(avx512)
SAT_GEMM_DECL(avx2)

#endif
