/*
 * The model's operations for one ISA (the maths of the TypeScript ops in src/engine/ops on float32 heap tensors),
 * each split into tasks for the pool. Ops whose outputs are computed row by row or element by
 * element give the same bits for any split. Sums across rows (weight and bias gradients of norms
 * and linears) are formed per fixed block of RED_ROWS rows and the block sums added in order, so
 * they do not depend on the thread count either. Attention runs one task per (sequence, kv head):
 * the products, the softmax and the gradient of a kv head's query group stay in that task's caches.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

#define F32(i) ((float*)(base + (size_t)a[i]))
#define I32(i) ((int32_t*)(base + (size_t)a[i]))
#define OPT_F32(i) (a[i] != 0 ? F32(i) : NULL)
#define INT(i) ((int)a[i])
#define MINI(x, y) ((x) < (y) ? (x) : (y))

#define ELEMS_PER_TASK 16384 /* elementwise work per task: a few µs */
#define RED_ROWS 32          /* rows per partial sum of a cross-row reduction */

static int rows_per_task(int N, int C) {
  const int r = (ELEMS_PER_TASK + C - 1) / (C > 0 ? C : 1);
  return r < 1 ? 1 : r > N ? (N > 0 ? N : 1) : r;
}
static int ceil_div(long x, long y) { return (int)((x + y - 1) / y); }

/* Cross-row reduction scratch (partial sums per block of RED_ROWS rows), grown by the caller. */
static float* red;
static size_t red_floats;
static float* red_buffer(size_t n) {
  if (red_floats < n) {
    free(red);
    red = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!red) abort();
    red_floats = n;
  }
  return red;
}

/* dst[c] += Σ_b part[b·C + c] over `blocks` blocks, in block order; parallel over columns. */
typedef struct {
  float* dst;
  const float* part;
  int blocks, C, cols;
} colsum_job;
static void colsum_task(void* ctx, int task, int thread) {
  (void)thread;
  const colsum_job* g = ctx;
  const int c0 = task * g->cols, c1 = MINI(c0 + g->cols, g->C);
  for (int c = c0; c < c1; c += VL) {
    const vmask m = vmask_n(c1 - c);
    vf s = vzero();
    for (int b = 0; b < g->blocks; b++) s = vadd(s, vload_m(g->part + (size_t)b * g->C + c, m));
    vstore_m(g->dst + c, vadd(vload_m(g->dst + c, m), s), m);
  }
}
static void add_column_sums(float* dst, const float* part, int blocks, int C) {
  colsum_job g = {dst, part, blocks, C, 256};
  sat_parallel(ceil_div(C, g.cols), colsum_task, &g);
}

/* ---------------- linear bias gradient ---------------- */

typedef struct {
  const float* dout;
  float* part;
  int N, C;
} biasgrad_job;
static void biasgrad_task(void* ctx, int task, int thread) {
  (void)thread;
  const biasgrad_job* g = ctx;
  const int n0 = task * RED_ROWS, n1 = MINI(n0 + RED_ROWS, g->N);
  float* p = g->part + (size_t)task * g->C;
  for (int c = 0; c < g->C; c += VL) {
    const vmask m = vmask_n(g->C - c);
    vf s = vzero();
    for (int n = n0; n < n1; n++) s = vadd(s, vload_m(g->dout + (size_t)n * g->C + c, m));
    vstore_m(p + c, s, m);
  }
}
static void op_bias_grad(double* a, char* base) {
  const int N = INT(2), C = INT(3);
  const int blocks = ceil_div(N, RED_ROWS);
  biasgrad_job g = {F32(1), red_buffer((size_t)blocks * C), N, C};
  sat_parallel(blocks, biasgrad_task, &g);
  add_column_sums(F32(0), g.part, blocks, C);
}

static void op_gemm(double* a, char* base) {
  SFX(sat_gemm)(INT(0), INT(1), INT(2), INT(3), INT(4), F32(5), F32(6), F32(7), INT(8), OPT_F32(9));
}

/* ---------------- LayerNorm / RMSNorm ---------------- */

typedef struct {
  float *out, *mean, *rstd;
  const float *inp, *w, *b;
  int N, C, rows;
  float eps;
  int rms;
} norm_fwd_job;

static void norm_fwd_task(void* ctx, int task, int thread) {
  (void)thread;
  const norm_fwd_job* g = ctx;
  const int C = g->C;
  const int n0 = task * g->rows, n1 = MINI(n0 + g->rows, g->N);
  for (int n = n0; n < n1; n++) {
    const float* x = g->inp + (size_t)n * C;
    float* y = g->out + (size_t)n * C;
    float m = 0;
    if (!g->rms) {
      vf s = vzero();
      for (int c = 0; c < C; c += VL) s = vadd(s, vload_m(x + c, vmask_n(C - c)));
      m = vsum(s) / C;
    }
    const vf mv = vset1(m);
    vf ss = vzero();
    for (int c = 0; c < C; c += VL) {
      const vmask k = vmask_n(C - c);
      const vf d = vblend_m(k, vzero(), vsub(vload_m(x + c, k), mv)); /* masked lanes stay 0 */
      ss = vfma(d, d, ss);
    }
    const float sq = vsum(ss);
    const float r = 1.0f / sqrtf(sq / C + g->eps);
    const vf rv = vset1(r);
    for (int c = 0; c < C; c += VL) {
      const vmask k = vmask_n(C - c);
      vf v = vmul(vmul(vsub(vload_m(x + c, k), mv), rv), vload_m(g->w + c, k));
      if (g->b) v = vadd(v, vload_m(g->b + c, k));
      vstore_m(y + c, v, k);
    }
    if (g->mean) g->mean[n] = m;
    g->rstd[n] = r;
  }
}

static void op_layernorm_fwd(double* a, char* base) {
  norm_fwd_job g = {F32(0), F32(1), F32(2), F32(3), F32(4), OPT_F32(5), INT(6), INT(7), 0, (float)a[8], 0};
  g.rows = rows_per_task(g.N, g.C);
  sat_parallel(ceil_div(g.N, g.rows), norm_fwd_task, &g);
}

static void op_rmsnorm_fwd(double* a, char* base) {
  norm_fwd_job g = {F32(0), NULL, F32(1), F32(2), F32(3), NULL, INT(4), INT(5), 0, (float)a[6], 1};
  g.rows = rows_per_task(g.N, g.C);
  sat_parallel(ceil_div(g.N, g.rows), norm_fwd_task, &g);
}

typedef struct {
  float* dinp;
  const float *dout, *inp, *w, *mean, *rstd;
  float* part; /* blocks × (C dweight [, C dbias]) */
  int N, C, rms, hasBias;
} norm_bwd_job;

/* One block of RED_ROWS rows: dinp for each row, partial dweight (and dbias) for the block. */
static void norm_bwd_task(void* ctx, int task, int thread) {
  (void)thread;
  const norm_bwd_job* g = ctx;
  const int C = g->C;
  const int stride = g->hasBias ? 2 * C : C;
  float* pw = g->part + (size_t)task * stride;
  float* pb = pw + C;
  memset(pw, 0, (size_t)stride * sizeof(float));
  const int n0 = task * RED_ROWS, n1 = MINI(n0 + RED_ROWS, g->N);
  for (int n = n0; n < n1; n++) {
    const float* x = g->inp + (size_t)n * C;
    const float* dy = g->dout + (size_t)n * C;
    float* dx = g->dinp + (size_t)n * C;
    const float m = g->rms ? 0.0f : g->mean[n];
    const float r = g->rstd[n];
    const vf mv = vset1(m), rv = vset1(r);
    vf gs = vzero(), gxs = vzero();
    for (int c = 0; c < C; c += VL) {
      const vmask k = vmask_n(C - c);
      const vf gv = vmul(vload_m(dy + c, k), vload_m(g->w + c, k));
      const vf xhat = vmul(vsub(vload_m(x + c, k), mv), rv);
      gs = vadd(gs, gv);
      gxs = vfma(gv, xhat, gxs);
    }
    const vf gMean = vset1(g->rms ? 0.0f : vsum(gs) / C);
    const vf gxMean = vset1(vsum(gxs) / C);
    for (int c = 0; c < C; c += VL) {
      const vmask k = vmask_n(C - c);
      const vf d = vload_m(dy + c, k);
      const vf xhat = vmul(vsub(vload_m(x + c, k), mv), rv);
      const vf gv = vmul(d, vload_m(g->w + c, k));
      /* dx += r·(g − mean(g) − xhat·mean(g·xhat)) */
      const vf t = vfnma(xhat, gxMean, vsub(gv, gMean));
      vstore_m(dx + c, vfma(rv, t, vload_m(dx + c, k)), k);
      vstore_m(pw + c, vfma(d, xhat, vload_m(pw + c, k)), k);
      if (g->hasBias) vstore_m(pb + c, vadd(vload_m(pb + c, k), d), k);
    }
  }
}

static void norm_bwd(norm_bwd_job* g, float* dweight, float* dbias) {
  const int blocks = ceil_div(g->N, RED_ROWS);
  const int stride = g->hasBias ? 2 * g->C : g->C;
  float* buf = red_buffer((size_t)(blocks + 1) * stride);
  g->part = buf;
  sat_parallel(blocks, norm_bwd_task, g);
  float* sums = buf + (size_t)blocks * stride;
  memset(sums, 0, (size_t)stride * sizeof(float));
  add_column_sums(sums, buf, blocks, stride);
  for (int c = 0; c < g->C; c++) dweight[c] += sums[c];
  if (g->hasBias)
    for (int c = 0; c < g->C; c++) dbias[c] += sums[g->C + c];
}

static void op_layernorm_bwd(double* a, char* base) {
  float* dbias = OPT_F32(2);
  norm_bwd_job g = {F32(0), F32(3), F32(4), F32(5), F32(6), F32(7), NULL, INT(8), INT(9), 0, dbias != NULL};
  norm_bwd(&g, F32(1), dbias);
}

static void op_rmsnorm_bwd(double* a, char* base) {
  norm_bwd_job g = {F32(0), F32(2), F32(3), F32(4), NULL, F32(5), NULL, INT(6), INT(7), 1, 0};
  norm_bwd(&g, F32(1), NULL);
}

/* ---------------- pointwise ---------------- */

typedef struct {
  int kind;
  float* o0;
  float* o1;
  const float *i0, *i1, *i2;
  long n;
} pw_job;

enum { PW_GELU, PW_GELU_BWD, PW_SWIGLU, PW_SWIGLU_BWD, PW_ADD, PW_ACC, PW_ZERO };

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_A 0.044715f

static void pw_task(void* ctx, int task, int thread) {
  (void)thread;
  const pw_job* g = ctx;
  const long e0 = (long)task * ELEMS_PER_TASK;
  const long e1 = e0 + ELEMS_PER_TASK < g->n ? e0 + ELEMS_PER_TASK : g->n;
  const vf one = vset1(1.0f);
  for (long i = e0; i < e1; i += VL) {
    const vmask k = vmask_n((int)(e1 - i < VL ? e1 - i : VL));
    switch (g->kind) {
      case PW_GELU: { /* x·σ(2u), u = √(2/π)(x + 0.044715x³) */
        const vf x = vload_m(g->i0 + i, k);
        const vf u2 = vmul(vmul(vset1(-2.0f * GELU_K), x), vfma(vmul(vset1(GELU_A), x), x, one));
        vstore_m(g->o0 + i, vdiv(x, vadd(one, vexp(u2))), k);
        break;
      }
      case PW_GELU_BWD: { /* s = out/x (1/2 at 0); dx += dy·s·(1 + 2k·x·(1−s)·(1 + 3a·x²)) */
        const vf x = vload_m(g->i0 + i, k);
        const vf y = vload_m(g->i1 + i, k);
        const vf dy = vload_m(g->i2 + i, k);
        const vf s = vblend_m(veq_m(x, vzero()), vdiv(y, x), vset1(0.5f));
        const vf du = vfma(vmul(vset1(3.0f * GELU_A), x), x, one);
        const vf slope = vmul(s, vfma(vmul(vmul(vset1(2.0f * GELU_K), x), vsub(one, s)), du, one));
        vstore_m(g->o0 + i, vfma(dy, slope, vload_m(g->o0 + i, k)), k);
        break;
      }
      case PW_SWIGLU: {
        const vf gt = vload_m(g->i0 + i, k);
        const vf up = vload_m(g->i1 + i, k);
        vstore_m(g->o0 + i, vmul(vdiv(gt, vadd(one, vexp(vsub(vzero(), gt)))), up), k);
        break;
      }
      case PW_SWIGLU_BWD: {
        const vf d = vload_m(g->i0 + i, k);
        const vf gt = vload_m(g->i1 + i, k);
        const vf up = vload_m(g->i2 + i, k);
        const vf s = vdiv(one, vadd(one, vexp(vsub(vzero(), gt))));
        const vf dg = vmul(vmul(vmul(d, up), s), vfma(gt, vsub(one, s), one));
        vstore_m(g->o0 + i, vadd(vload_m(g->o0 + i, k), dg), k);
        vstore_m(g->o1 + i, vfma(vmul(d, gt), s, vload_m(g->o1 + i, k)), k);
        break;
      }
      case PW_ADD:
        vstore_m(g->o0 + i, vadd(vload_m(g->i0 + i, k), vload_m(g->i1 + i, k)), k);
        break;
      case PW_ACC:
        vstore_m(g->o0 + i, vadd(vload_m(g->o0 + i, k), vload_m(g->i0 + i, k)), k);
        break;
      case PW_ZERO:
        vstore_m(g->o0 + i, vzero(), k);
        break;
    }
  }
}

static void pointwise(pw_job* g) { sat_parallel(ceil_div(g->n, ELEMS_PER_TASK), pw_task, g); }

static void op_gelu_fwd(double* a, char* base) {
  pw_job g = {PW_GELU, F32(0), NULL, F32(1), NULL, NULL, (long)a[2]};
  pointwise(&g);
}
static void op_gelu_bwd(double* a, char* base) {
  pw_job g = {PW_GELU_BWD, F32(0), NULL, F32(1), F32(2), F32(3), (long)a[4]};
  pointwise(&g);
}
static void op_swiglu_fwd(double* a, char* base) {
  pw_job g = {PW_SWIGLU, F32(0), NULL, F32(1), F32(2), NULL, (long)a[3]};
  pointwise(&g);
}
static void op_swiglu_bwd(double* a, char* base) {
  pw_job g = {PW_SWIGLU_BWD, F32(0), F32(1), F32(2), F32(3), F32(4), (long)a[5]};
  pointwise(&g);
}
static void op_add(double* a, char* base) {
  pw_job g = {PW_ADD, F32(0), NULL, F32(1), F32(2), NULL, (long)a[3]};
  pointwise(&g);
}
static void op_accumulate(double* a, char* base) {
  pw_job g = {PW_ACC, F32(0), NULL, F32(1), NULL, NULL, (long)a[2]};
  pointwise(&g);
}
static void op_zero(double* a, char* base) {
  pw_job g = {PW_ZERO, F32(0), NULL, NULL, NULL, NULL, (long)a[1]};
  pointwise(&g);
}

/* ---------------- embeddings, row copies ---------------- */

typedef struct {
  float* out;
  const int32_t* ids;
  const float* table;
  int N, C, rows, add;
} embed_job;
static void embed_fwd_task(void* ctx, int task, int thread) {
  (void)thread;
  const embed_job* g = ctx;
  const int n0 = task * g->rows, n1 = MINI(n0 + g->rows, g->N);
  for (int n = n0; n < n1; n++) {
    const float* src = g->table + (size_t)g->ids[n] * g->C;
    float* dst = g->out + (size_t)n * g->C;
    if (!g->add) memcpy(dst, src, (size_t)g->C * sizeof(float));
    else
      for (int c = 0; c < g->C; c += VL) {
        const vmask k = vmask_n(g->C - c);
        vstore_m(dst + c, vadd(vload_m(dst + c, k), vload_m(src + c, k)), k);
      }
  }
}
static void op_embed_fwd(double* a, char* base) {
  embed_job g = {F32(0), I32(1), F32(2), INT(3), INT(4), 0, INT(5)};
  g.rows = rows_per_task(g.N, g.C);
  sat_parallel(ceil_div(g.N, g.rows), embed_fwd_task, &g);
}

/* Scatter-add: a task owns a column range for all rows, so repeated ids never race. */
typedef struct {
  float* dtable;
  const float* dout;
  const int32_t* ids;
  int N, C, cols;
} embed_bwd_job;
static void embed_bwd_task(void* ctx, int task, int thread) {
  (void)thread;
  const embed_bwd_job* g = ctx;
  const int c0 = task * g->cols, c1 = MINI(c0 + g->cols, g->C);
  for (int n = 0; n < g->N; n++) {
    float* dst = g->dtable + (size_t)g->ids[n] * g->C;
    const float* src = g->dout + (size_t)n * g->C;
    for (int c = c0; c < c1; c += VL) {
      const vmask k = vmask_n(c1 - c);
      vstore_m(dst + c, vadd(vload_m(dst + c, k), vload_m(src + c, k)), k);
    }
  }
}
static void op_embed_bwd(double* a, char* base) {
  embed_bwd_job g = {F32(0), F32(1), I32(2), INT(3), INT(4), 64};
  sat_parallel(ceil_div(g.C, g.cols), embed_bwd_task, &g);
}

typedef struct {
  float* dst;
  const float* src;
  long ds, ss;
  int rows, cols, add, perTask;
} copy_job;
static void copy_task(void* ctx, int task, int thread) {
  (void)thread;
  const copy_job* g = ctx;
  const int r0 = task * g->perTask, r1 = MINI(r0 + g->perTask, g->rows);
  for (int r = r0; r < r1; r++) {
    float* d = g->dst + r * g->ds;
    const float* s = g->src + r * g->ss;
    if (!g->add) memcpy(d, s, (size_t)g->cols * sizeof(float));
    else
      for (int c = 0; c < g->cols; c += VL) {
        const vmask k = vmask_n(g->cols - c);
        vstore_m(d + c, vadd(vload_m(d + c, k), vload_m(s + c, k)), k);
      }
  }
}
static void op_copy_rows(double* a, char* base) {
  copy_job g = {F32(0), F32(2), (long)a[1], (long)a[3], INT(4), INT(5), INT(6)};
  g.perTask = rows_per_task(g.rows, g.cols);
  sat_parallel(ceil_div(g.rows, g.perTask), copy_task, &g);
}

/* ---------------- RoPE ---------------- */

typedef struct {
  float* x;
  const int32_t* pos;
  const float *cos, *sin; /* (maxPos, hd/2) float32 copies of the float64 tables */
  int N, H, hd, rows;
  float sign;
} rope_job;
static void rope_task(void* ctx, int task, int thread) {
  (void)thread;
  const rope_job* g = ctx;
  const int half = g->hd / 2;
  const vf sign = vset1(g->sign);
  const int n0 = task * g->rows, n1 = MINI(n0 + g->rows, g->N);
  for (int n = n0; n < n1; n++) {
    const float* cs = g->cos + (size_t)g->pos[n] * half;
    const float* sn = g->sin + (size_t)g->pos[n] * half;
    for (int h = 0; h < g->H; h++) {
      float* x = g->x + ((size_t)n * g->H + h) * g->hd;
      for (int i = 0; i < half; i += VL) {
        const vmask k = vmask_n(half - i);
        const vf c = vload_m(cs + i, k), s = vmul(sign, vload_m(sn + i, k));
        const vf lo = vload_m(x + i, k), hi = vload_m(x + i + half, k);
        vstore_m(x + i, vfnma(hi, s, vmul(lo, c)), k);
        vstore_m(x + i + half, vfma(lo, s, vmul(hi, c)), k);
      }
    }
  }
}
static void op_rope(double* a, char* base) {
  rope_job g = {F32(0), I32(1), F32(2), F32(3), INT(4), INT(5), INT(6), 0, a[7] != 0 ? -1.0f : 1.0f};
  g.rows = rows_per_task(g.N, g.H * g.hd);
  sat_parallel(ceil_div(g.N, g.rows), rope_task, &g);
}

/* ---------------- small products inside attention ---------------- */

/*
 * C[r, 0:n] (=|+=) Σ_{k ∈ [k0, k1)} A(r, k) · B[k, 0:n] for r < rows ≤ 4, with A(r, k) at
 * A[r·ars + k·aks] (so Aᵀ of a row-major matrix needs no copy), B rows at B + k·ldb, C rows at
 * C + r·ldc. NV output vectors at a time: 4 rows × NV vectors of accumulators, one broadcast of A
 * per row and k.
 */
#define DEFINE_MM4(name, NV)                                                                              \
  static void name(float* C, long ldc, const float* A, long ars, long aks, const float* B, long ldb,       \
                   int rows, int j, int n, int k0, int k1, int accumulate) {                              \
    const float* ar[4];                                                                                   \
    for (int r = 0; r < 4; r++) ar[r] = A + (r < rows ? r : 0) * ars;                                      \
    vmask m[NV];                                                                                          \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) m[v] = vmask_n(n - j - v * VL);                  \
    vf acc[4][NV];                                                                                        \
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)                                                   \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = vzero();                          \
    const float* b = B + (long)k0 * ldb + j;                                                              \
    for (int k = k0; k < k1; k++, b += ldb) {                                                             \
      vf bv[NV];                                                                                          \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = vload_m(b + v * VL, m[v]);             \
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {                                               \
        const vf x = vset1(ar[r][k * aks]);                                                               \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = vfma(x, bv[v], acc[r][v]);       \
      }                                                                                                   \
    }                                                                                                     \
    for (int r = 0; r < rows; r++) {                                                                      \
      float* c = C + r * ldc + j;                                                                         \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                              \
        if (accumulate) acc[r][v] = vadd(vload_m(c + v * VL, m[v]), acc[r][v]);                           \
        vstore_m(c + v * VL, acc[r][v], m[v]);                                                            \
      }                                                                                                   \
    }                                                                                                     \
  }
DEFINE_MM4(mm4x4, 4)
DEFINE_MM4(mm4x2, 2)

static void mm4(float* C, long ldc, const float* A, long ars, long aks, const float* B, long ldb, int rows, int n,
                int k0, int k1, int accumulate) {
  int j = 0;
  for (; j + 2 * VL < n; j += 4 * VL) mm4x4(C, ldc, A, ars, aks, B, ldb, rows, j, n, k0, k1, accumulate);
  for (; j < n; j += 2 * VL) mm4x2(C, ldc, A, ars, aks, B, ldb, rows, j, n, k0, k1, accumulate);
}

/* dst (cols, rows) = src (rows, cols)ᵀ; src rows at src + r·lds. */
static void transpose(float* dst, const float* src, long lds, int rows, int cols) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[r * lds + c];
}

/* ---------------- attention (training) ---------------- */

typedef struct {
  float *out, *att, *dq, *dk, *dv;
  const float *dout, *q, *k, *v;
  int B, T, Hq, Hkv, hd;
} attn_job;

/* Row i of S (T, T): softmax(scale · S[i, 0..i]) in place, zero beyond i. */
static void causal_softmax_row(float* s, int i, int T, float scale) {
  const int L = i + 1;
  vf mx = vset1(-INFINITY);
  for (int j = 0; j < L; j += VL) mx = vmax(mx, vblend_m(vmask_n(L - j), vset1(-INFINITY), vload_m(s + j, vmask_n(L - j))));
  const float m = vhmax(mx);
  const vf sc = vset1(scale), msc = vset1(m * scale);
  vf sum = vzero();
  for (int j = 0; j < L; j += VL) {
    const vmask k = vmask_n(L - j);
    const vf e = vexp(vfnma(vset1(1.0f), msc, vmul(vload_m(s + j, k), sc)));
    const vf ek = vblend_m(k, vzero(), e);
    sum = vadd(sum, ek);
    vstore_m(s + j, ek, k);
  }
  const vf inv = vset1(1.0f / vsum(sum));
  for (int j = 0; j < L; j += VL) {
    const vmask k = vmask_n(L - j);
    vstore_m(s + j, vmul(vload_m(s + j, k), inv), k);
  }
  if (L < T) memset(s + L, 0, (size_t)(T - L) * sizeof(float));
}

static void attn_fwd_task(void* ctx, int task, int thread) {
  const attn_job* g = ctx;
  const int T = g->T, hd = g->hd, Hq = g->Hq, Hkv = g->Hkv;
  const int b = task / Hkv, kh = task % Hkv;
  const int group = Hq / Hkv;
  const float scale = 1.0f / sqrtf((float)hd);
  const long kvStride = (long)Hkv * hd, qStride = (long)Hq * hd;
  const float* kb = g->k + ((size_t)b * T * Hkv + kh) * hd;
  const float* vb = g->v + ((size_t)b * T * Hkv + kh) * hd;
  float* kt = sat_scratch(thread, 0, (size_t)hd * T);
  if (!kt) abort();
  transpose(kt, kb, kvStride, T, hd); /* (hd, T) */
  for (int h = kh * group; h < (kh + 1) * group; h++) {
    const float* qb = g->q + ((size_t)b * T * Hq + h) * hd;
    float* ob = g->out + ((size_t)b * T * Hq + h) * hd;
    float* P = g->att + ((size_t)b * Hq + h) * T * T;
    for (int i0 = 0; i0 < T; i0 += 4) {
      const int rows = MINI(4, T - i0);
      /* Scores of these rows for keys 0..i0+rows-1 (the causal part), then the softmax. */
      mm4(P + (size_t)i0 * T, T, qb + i0 * qStride, qStride, 1, kt, T, rows, i0 + rows, 0, hd, 0);
      for (int r = 0; r < rows; r++) causal_softmax_row(P + (size_t)(i0 + r) * T, i0 + r, T, scale);
      mm4(ob + i0 * qStride, qStride, P + (size_t)i0 * T, T, 1, vb, kvStride, rows, hd, 0, i0 + rows, 0);
    }
  }
}

static void op_attn_fwd(double* a, char* base) {
  attn_job g = {F32(0), F32(1), NULL, NULL, NULL, NULL, F32(2), F32(3), F32(4), INT(5), INT(6), INT(7), INT(8), INT(9)};
  sat_parallel(g.B * g.Hkv, attn_fwd_task, &g);
}

static void attn_bwd_task(void* ctx, int task, int thread) {
  const attn_job* g = ctx;
  const int T = g->T, hd = g->hd, Hq = g->Hq, Hkv = g->Hkv;
  const int b = task / Hkv, kh = task % Hkv;
  const int group = Hq / Hkv;
  const float scale = 1.0f / sqrtf((float)hd);
  const long kvStride = (long)Hkv * hd, qStride = (long)Hq * hd;
  const float* kb = g->k + ((size_t)b * T * Hkv + kh) * hd;
  const float* vb = g->v + ((size_t)b * T * Hkv + kh) * hd;
  float* dkb = g->dk + ((size_t)b * T * Hkv + kh) * hd;
  float* dvb = g->dv + ((size_t)b * T * Hkv + kh) * hd;
  float* buf = sat_scratch(thread, 0, (size_t)hd * T + (size_t)T * T);
  if (!buf) abort();
  float* vt = buf;                 /* (hd, T) */
  float* dS = vt + (size_t)hd * T; /* (T, T) dP, then dScores */
  transpose(vt, vb, kvStride, T, hd);
  for (int h = kh * group; h < (kh + 1) * group; h++) {
    const float* qb = g->q + ((size_t)b * T * Hq + h) * hd;
    const float* dob = g->dout + ((size_t)b * T * Hq + h) * hd;
    float* dqb = g->dq + ((size_t)b * T * Hq + h) * hd;
    const float* P = g->att + ((size_t)b * Hq + h) * T * T;
    /* dV += Pᵀ·dO: row j of Pᵀ (column j of P) is nonzero for i ≥ j only. */
    for (int j0 = 0; j0 < T; j0 += 4)
      mm4(dvb + j0 * kvStride, kvStride, P + j0, 1, T, dob, qStride, MINI(4, T - j0), hd, j0, T, 1);
    /* dP = dO·Vᵀ (causal part), then dS = scale·P ⊙ (dP − rowsum(P ⊙ dP)). */
    for (int i0 = 0; i0 < T; i0 += 4) {
      const int rows = MINI(4, T - i0);
      mm4(dS + (size_t)i0 * T, T, dob + i0 * qStride, qStride, 1, vt, T, rows, i0 + rows, 0, hd, 0);
      for (int r = 0; r < rows; r++) {
        const int i = i0 + r, L = i + 1;
        float* d = dS + (size_t)i * T;
        const float* p = P + (size_t)i * T;
        vf s = vzero();
        for (int j = 0; j < L; j += VL) {
          const vmask k = vmask_n(L - j);
          s = vfma(vload_m(p + j, k), vload_m(d + j, k), s);
        }
        const vf sv = vset1(vsum(s)), sc = vset1(scale);
        for (int j = 0; j < L; j += VL) {
          const vmask k = vmask_n(L - j);
          vstore_m(d + j, vmul(vmul(sc, vload_m(p + j, k)), vsub(vload_m(d + j, k), sv)), k);
        }
        if (L < T) memset(d + L, 0, (size_t)(T - L) * sizeof(float));
      }
      /* dQ += dS·K for these rows. */
      mm4(dqb + i0 * qStride, qStride, dS + (size_t)i0 * T, T, 1, kb, kvStride, rows, hd, 0, i0 + rows, 1);
    }
    /* dK += dSᵀ·Q. */
    for (int j0 = 0; j0 < T; j0 += 4)
      mm4(dkb + j0 * kvStride, kvStride, dS + j0, 1, T, qb, qStride, MINI(4, T - j0), hd, j0, T, 1);
  }
}

static void op_attn_bwd(double* a, char* base) {
  attn_job g = {NULL, F32(4), F32(0), F32(1), F32(2), F32(3), F32(5), F32(6), F32(7), INT(8), INT(9), INT(10), INT(11), INT(12)};
  sat_parallel(g.B * g.Hkv, attn_bwd_task, &g);
}

/* ---------------- attention against the kv cache (decoding) ---------------- */

typedef struct {
  float* out;
  const float *q, *kc, *vc;
  const int32_t *lengths, *active;
  int B, Tmax, Hq, Hkv, hd, pairs; /* (sequence, kv head) pairs per task */
} decode_job;

static void decode_task(void* ctx, int task, int thread) {
  const decode_job* g = ctx;
  const int hd = g->hd, group = g->Hq / g->Hkv;
  const float scale = 1.0f / sqrtf((float)hd);
  float* sc = sat_scratch(thread, 0, (size_t)g->Tmax + VL);
  if (!sc) abort();
  const int p0 = task * g->pairs, p1 = MINI(p0 + g->pairs, g->B * g->Hkv);
  for (int p = p0; p < p1; p++) {
    const int b = p / g->Hkv, kh = p % g->Hkv;
    if (!g->active[b]) continue;
    const int L = g->lengths[b];
    const float* K = g->kc + ((size_t)b * g->Hkv + kh) * g->Tmax * hd; /* (Tmax, hd) rows */
    const float* V = g->vc + ((size_t)b * g->Hkv + kh) * g->Tmax * hd;
    for (int h = kh * group; h < (kh + 1) * group; h++) {
      const float* q = g->q + ((size_t)b * g->Hq + h) * hd;
      float* o = g->out + ((size_t)b * g->Hq + h) * hd;
      float mx = -INFINITY;
      int t = 0;
      for (; t + 4 <= L; t += 4) {
        vf s0 = vzero(), s1 = vzero(), s2 = vzero(), s3 = vzero();
        const float* k0 = K + (size_t)t * hd;
        for (int d = 0; d < hd; d += VL) {
          const vmask k = vmask_n(hd - d);
          const vf x = vload_m(q + d, k);
          s0 = vfma(x, vload_m(k0 + d, k), s0);
          s1 = vfma(x, vload_m(k0 + hd + d, k), s1);
          s2 = vfma(x, vload_m(k0 + 2 * hd + d, k), s2);
          s3 = vfma(x, vload_m(k0 + 3 * hd + d, k), s3);
        }
        sc[t] = vsum(s0) * scale;
        sc[t + 1] = vsum(s1) * scale;
        sc[t + 2] = vsum(s2) * scale;
        sc[t + 3] = vsum(s3) * scale;
      }
      for (; t < L; t++) {
        vf s0 = vzero();
        for (int d = 0; d < hd; d += VL) {
          const vmask k = vmask_n(hd - d);
          s0 = vfma(vload_m(q + d, k), vload_m(K + (size_t)t * hd + d, k), s0);
        }
        sc[t] = vsum(s0) * scale;
      }
      for (t = 0; t < L; t++) mx = sc[t] > mx ? sc[t] : mx;
      vf sum = vzero();
      const vf mv = vset1(mx);
      for (t = 0; t < L; t += VL) {
        const vmask k = vmask_n(L - t);
        const vf e = vblend_m(k, vzero(), vexp(vsub(vload_m(sc + t, k), mv)));
        sum = vadd(sum, e);
        vstore_m(sc + t, e, k);
      }
      const float inv = 1.0f / vsum(sum);
      for (int d = 0; d < hd; d += 2 * VL) {
        const vmask m0 = vmask_n(hd - d), m1 = vmask_n(hd - d - VL);
        vf a0 = vzero(), a1 = vzero();
        for (t = 0; t < L; t++) {
          const vf pt = vset1(sc[t]);
          a0 = vfma(pt, vload_m(V + (size_t)t * hd + d, m0), a0);
          a1 = vfma(pt, vload_m(V + (size_t)t * hd + d + VL, m1), a1);
        }
        vstore_m(o + d, vmul(a0, vset1(inv)), m0);
        vstore_m(o + d + VL, vmul(a1, vset1(inv)), m1);
      }
    }
  }
}

static void op_attn_decode(double* a, char* base) {
  decode_job g = {F32(0), F32(1), F32(2), F32(3), I32(4), I32(5), INT(6), INT(7), INT(8), INT(9), INT(10), 1};
  long maxL = 1;
  for (int b = 0; b < g.B; b++)
    if (g.active[b] && g.lengths[b] > maxL) maxL = g.lengths[b];
  const long work = maxL * g.hd * 2 * (g.Hq / g.Hkv); /* multiply-adds per pair */
  g.pairs = (int)((4 * 65536 + work - 1) / work);
  sat_parallel(ceil_div((long)g.B * g.Hkv, g.pairs), decode_task, &g);
}

static void op_kv_write(double* a, char* base) {
  float *kc = F32(0), *vc = F32(1);
  const float *k = F32(2), *v = F32(3);
  const int32_t *pos = I32(4), *active = I32(5);
  const int B = INT(6), Tmax = INT(7), Hkv = INT(8), hd = INT(9);
  for (int b = 0; b < B; b++) {
    if (!active[b]) continue;
    for (int h = 0; h < Hkv; h++) {
      const size_t dst = (((size_t)b * Hkv + h) * Tmax + pos[b]) * hd;
      memcpy(kc + dst, k + ((size_t)b * Hkv + h) * hd, (size_t)hd * sizeof(float));
      memcpy(vc + dst, v + ((size_t)b * Hkv + h) * hd, (size_t)hd * sizeof(float));
    }
  }
}

/* ---------------- fused softmax cross-entropy ---------------- */

typedef struct {
  float *losses, *dlogits, *logp;
  const float* logits;
  const int32_t* targets;
  int N, V;
  float dscale;
} ce_job;

/* losses[n] = −log softmax(z)[t]; dlogits[n] = dscale·(softmax(z) − onehot(t)); ignored rows (t < 0) get 0. */
static void ce_task(void* ctx, int n, int thread) {
  (void)thread;
  const ce_job* g = ctx;
  const int V = g->V, t = g->targets[n];
  const float* z = g->logits + (size_t)n * V;
  float* dz = g->dlogits + (size_t)n * V;
  if (t < 0) {
    g->losses[n] = 0;
    memset(dz, 0, (size_t)V * sizeof(float));
    if (g->logp) memset(g->logp + (size_t)n * V, 0, (size_t)V * sizeof(float));
    return;
  }
  vf mx = vset1(-INFINITY);
  for (int i = 0; i < V; i += VL) mx = vmax(mx, vblend_m(vmask_n(V - i), vset1(-INFINITY), vload_m(z + i, vmask_n(V - i))));
  const float m = vhmax(mx);
  const vf mv = vset1(m);
  vf sum = vzero();
  for (int i = 0; i < V; i += VL) {
    const vmask k = vmask_n(V - i);
    const vf e = vblend_m(k, vzero(), vexp(vsub(vload_m(z + i, k), mv)));
    sum = vadd(sum, e);
    vstore_m(dz + i, e, k);
  }
  const float s = vsum(sum);
  const float logSum = logf(s);
  g->losses[n] = -((z[t] - m) - logSum);
  const vf scale = vset1(g->dscale / s);
  for (int i = 0; i < V; i += VL) {
    const vmask k = vmask_n(V - i);
    vstore_m(dz + i, vmul(vload_m(dz + i, k), scale), k);
  }
  dz[t] -= g->dscale;
  if (g->logp) {
    float* lp = g->logp + (size_t)n * V;
    const vf ml = vset1(logSum);
    for (int i = 0; i < V; i += VL) {
      const vmask k = vmask_n(V - i);
      vstore_m(lp + i, vsub(vsub(vload_m(z + i, k), mv), ml), k);
    }
  }
}

static void op_cross_entropy(double* a, char* base) {
  ce_job g = {F32(0), F32(1), OPT_F32(7), F32(2), I32(3), INT(4), INT(5), (float)a[6]};
  sat_parallel(g.N, ce_task, &g);
}

/* ---------------- sampling one row ---------------- */

/*
 * Draws a token from softmax(z · invTemp) as Rng.categorical does (u·total, then subtract the
 * weights in order until negative) and gives its log-prob. Weights are float32 exponentials of
 * the max-shifted logits; the total and the walk are float64.
 */
static void op_sample(double* a, char* base) {
  const float* z = F32(0);
  const int V = INT(1);
  const float invT = (float)a[2];
  const double u = a[3];
  float* e = sat_scratch(0, 1, (size_t)V + VL);
  if (!e) abort();
  vf mx = vset1(-INFINITY);
  for (int i = 0; i < V; i += VL) mx = vmax(mx, vblend_m(vmask_n(V - i), vset1(-INFINITY), vload_m(z + i, vmask_n(V - i))));
  const float m = vhmax(mx);
  const vf mv = vset1(m), it = vset1(invT);
  double total = 0;
  for (int i = 0; i < V; i += VL) {
    const vmask k = vmask_n(V - i);
    const vf x = vblend_m(k, vzero(), vexp(vmul(vsub(vload_m(z + i, k), mv), it)));
    vstore_m(e + i, x, k);
    total += vsum(x);
  }
  double r = u * total;
  int t = -1;
  for (int i = 0; i < V; i++) {
    r -= e[i];
    if (r < 0) {
      t = i;
      break;
    }
  }
  if (t < 0) /* rounding left r marginally ≥ 0: the last token with non-zero weight */
    for (t = V - 1; t > 0 && e[t] == 0; t--) {
    }
  a[14] = t;
  a[15] = (double)((z[t] - m) * invT) - log(total);
}

/* ---------------- optimizer helpers (typed arrays, not heap offsets) ---------------- */

typedef struct {
  float* p;
  const float* g;
  float *m, *v;
  const uint8_t* mask;
  size_t n;
  double lr, beta1, beta2, eps, decay, stepSize, bc2Sqrt;
} adam_job;

#define ADAM_CHUNK 65536

/* Lanes of `yes` where mask[l] != 0, else `no`, for the last n < VL elements (no read past n). */
static vf mask_tail(const uint8_t* mask, int n, vf yes, vf no) {
  uint8_t m[VL] = {0};
  for (int l = 0; l < n; l++) m[l] = mask[l];
  return vselect_u8(m, yes, no);
}

/*
 * Float32 arithmetic in torch.optim.AdamW's order (its single-tensor path for float32 params):
 * p ← p·decay (where the mask allows); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − stepSize·m / (√v / bc2Sqrt + eps). The TypeScript loop does the same in float64; the two
 * differ by a few float32 roundings per element (src/engine/ops/README.md).
 */
static void adam_task(void* ctx, int task, int thread) {
  (void)thread;
  const adam_job* j = ctx;
  const size_t i0 = (size_t)task * ADAM_CHUNK;
  const size_t i1 = i0 + ADAM_CHUNK < j->n ? i0 + ADAM_CHUNK : j->n;
  const vf b1 = vset1((float)j->beta1), c1 = vset1((float)(1 - j->beta1));
  const vf b2 = vset1((float)j->beta2), c2 = vset1((float)(1 - j->beta2));
  const vf eps = vset1((float)j->eps), step = vset1((float)j->stepSize), bc2 = vset1((float)j->bc2Sqrt);
  const vf decay = vset1((float)j->decay), one = vset1(1.0f);
  const int decays = j->decay != 1.0;
  for (size_t i = i0; i < i1; i += VL) {
    const vmask k = vmask_n((int)(i1 - i < VL ? i1 - i : VL));
    vf p = vload_m(j->p + i, k);
    if (decays) {
      vf d = decay;
      if (j->mask) d = i + VL <= i1 ? vselect_u8(j->mask + i, decay, one) : mask_tail(j->mask + i, (int)(i1 - i), decay, one);
      p = vmul(p, d);
    }
    const vf g = vload_m(j->g + i, k);
    const vf m = vfma(b1, vload_m(j->m + i, k), vmul(c1, g));
    const vf v = vfma(b2, vload_m(j->v + i, k), vmul(vmul(c2, g), g));
    const vf denom = vadd(vdiv(vsqrt(v), bc2), eps);
    p = vsub(p, vmul(step, vdiv(m, denom)));
    vstore_m(j->m + i, m, k);
    vstore_m(j->v + i, v, k);
    vstore_m(j->p + i, p, k);
  }
}
static void adamw(float* p, const float* g, float* m, float* v, const uint8_t* mask, size_t n, double lr,
                  double beta1, double beta2, double eps, double decay, double stepSize, double bc2Sqrt) {
  adam_job j = {p, g, m, v, mask, n, lr, beta1, beta2, eps, decay, stepSize, bc2Sqrt};
  sat_parallel(ceil_div((long)n, ADAM_CHUNK), adam_task, &j);
}

typedef struct {
  const float* x;
  size_t n;
  double* part;
  double s;
  float* y;
} sumsq_job;
static void sumsq_task(void* ctx, int task, int thread) {
  (void)thread;
  const sumsq_job* j = ctx;
  const size_t i0 = (size_t)task * ADAM_CHUNK;
  const size_t i1 = i0 + ADAM_CHUNK < j->n ? i0 + ADAM_CHUNK : j->n;
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = i0;
  for (; i + 4 <= i1; i += 4) {
    s0 += (double)j->x[i] * j->x[i];
    s1 += (double)j->x[i + 1] * j->x[i + 1];
    s2 += (double)j->x[i + 2] * j->x[i + 2];
    s3 += (double)j->x[i + 3] * j->x[i + 3];
  }
  for (; i < i1; i++) s0 += (double)j->x[i] * j->x[i];
  j->part[task] = (s0 + s1) + (s2 + s3);
}
static double sumsq(const float* x, size_t n) {
  const int tasks = ceil_div((long)n, ADAM_CHUNK);
  double* part = malloc(sizeof(double) * (tasks > 0 ? tasks : 1));
  if (!part) abort();
  sumsq_job j = {x, n, part};
  sat_parallel(tasks, sumsq_task, &j);
  double s = 0;
  for (int t = 0; t < tasks; t++) s += part[t];
  free(part);
  return s;
}
static void scale_task(void* ctx, int task, int thread) {
  (void)thread;
  const sumsq_job* j = ctx;
  const size_t i0 = (size_t)task * ADAM_CHUNK;
  const size_t i1 = i0 + ADAM_CHUNK < j->n ? i0 + ADAM_CHUNK : j->n;
  for (size_t i = i0; i < i1; i++) j->y[i] = (float)((double)j->y[i] * j->s);
}
static void scale(float* x, size_t n, double s) {
  sumsq_job j = {NULL, n, NULL, s, x};
  sat_parallel(ceil_div((long)n, ADAM_CHUNK), scale_task, &j);
}

/* ---------------- FMA peak ---------------- */

#include <time.h>
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
/* 12 independent FMA chains (more than latency × issue width on current x86 cores). */
static double fma_peak(double ms) {
  const vf m = vset1(0.999999f), c = vset1(1e-6f);
  vf x0 = vset1(1.0f), x1 = vset1(1.1f), x2 = vset1(1.2f), x3 = vset1(1.3f), x4 = vset1(1.4f), x5 = vset1(1.5f);
  vf x6 = vset1(1.6f), x7 = vset1(1.7f), x8 = vset1(1.8f), x9 = vset1(1.9f), x10 = vset1(2.0f), x11 = vset1(2.1f);
  const long iters = 1 << 16;
  long rounds = 0;
  const double t0 = now_s();
  double t;
  do {
    for (long n = 0; n < iters; n++) {
      x0 = vfma(x0, m, c), x1 = vfma(x1, m, c), x2 = vfma(x2, m, c), x3 = vfma(x3, m, c);
      x4 = vfma(x4, m, c), x5 = vfma(x5, m, c), x6 = vfma(x6, m, c), x7 = vfma(x7, m, c);
      x8 = vfma(x8, m, c), x9 = vfma(x9, m, c), x10 = vfma(x10, m, c), x11 = vfma(x11, m, c);
    }
    rounds++;
    t = now_s() - t0;
  } while (t * 1000 < ms);
  const vf s = vadd(vadd(vadd(vadd(x0, x1), vadd(x2, x3)), vadd(vadd(x4, x5), vadd(x6, x7))),
                    vadd(vadd(x8, x9), vadd(x10, x11)));
  volatile float sink = vsum(s); /* keeps the chains alive */
  (void)sink;
  return (double)rounds * iters * 12 * VL * 2 / t / 1e9;
}

const sat_isa_table SFX(sat_table) = {
#if SAT_ISA == 512
    "avx512",
#else
    "avx2",
#endif
    {
        [OP_GEMM] = op_gemm,
        [OP_BIAS_GRAD] = op_bias_grad,
        [OP_LAYERNORM_FWD] = op_layernorm_fwd,
        [OP_LAYERNORM_BWD] = op_layernorm_bwd,
        [OP_RMSNORM_FWD] = op_rmsnorm_fwd,
        [OP_RMSNORM_BWD] = op_rmsnorm_bwd,
        [OP_GELU_FWD] = op_gelu_fwd,
        [OP_GELU_BWD] = op_gelu_bwd,
        [OP_SWIGLU_FWD] = op_swiglu_fwd,
        [OP_SWIGLU_BWD] = op_swiglu_bwd,
        [OP_ADD] = op_add,
        [OP_ACCUMULATE] = op_accumulate,
        [OP_EMBED_FWD] = op_embed_fwd,
        [OP_EMBED_BWD] = op_embed_bwd,
        [OP_ROPE] = op_rope,
        [OP_ATTN_FWD] = op_attn_fwd,
        [OP_ATTN_BWD] = op_attn_bwd,
        [OP_ATTN_DECODE] = op_attn_decode,
        [OP_KV_WRITE] = op_kv_write,
        [OP_COPY_ROWS] = op_copy_rows,
        [OP_ZERO] = op_zero,
        [OP_CROSS_ENTROPY] = op_cross_entropy,
        [OP_SAMPLE] = op_sample,
    },
    adamw,
    sumsq,
    scale,
    fma_peak,
};
