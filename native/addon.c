/*
 * N-API entry points of the native kernels (plain node_api.h, no C++). Built without ISA flags, so
 * it loads on any x86-64 and reports what the CPU can run; the kernels come from the per-ISA objects
 * (sat_table_avx512, sat_table_avx2) chosen at `create`.
 *
 *   cpu()                          -> { avx512: bool, avx2: bool }   (avx2 means AVX2 + FMA)
 *   create(heapView, argsOffset, isa, threads) -> context (tensors are byte offsets into heapView's
 *                                     buffer; arguments are doubles at argsOffset in the same buffer)
 *   run(context, op)               -> runs op with the arguments in place (kernels.h lists them)
 *   adamw(context, p, g, m, v, mask|null, lr, beta1, beta2, eps, decay, stepSize, bc2Sqrt)
 *   sumsq(context, x) -> Σ x² (float64);  scale(context, x, s): x ← x·s
 *   fmaPeak(isa, threads, ms)      -> GFLOP/s of independent FMA chains on `threads` threads at once
 *
 * One operation runs at a time (a mutex), so contexts may share the process-wide thread pool.
 */
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"

typedef struct {
  char* base;
  double* args;
  const sat_isa_table* table;
  int threads;
} context;

static pthread_mutex_t op_mu = PTHREAD_MUTEX_INITIALIZER;

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, NULL, "native: " #call); \
      return NULL;                                    \
    }                                                 \
  } while (0)

static int cpu_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int cpu_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static const sat_isa_table* table_for(const char* isa) {
  if (strcmp(isa, "avx512") == 0) return cpu_avx512() ? &sat_table_avx512 : NULL;
  if (strcmp(isa, "avx2") == 0) return cpu_avx2() ? &sat_table_avx2 : NULL;
  return NULL;
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "native: too few arguments");
    return NULL;
  }
  return argv[0];
}

static context* get_context(napi_env env, napi_value v) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "native: expected a context from create()");
    return NULL;
  }
  return p;
}

static void* typed_data(napi_env env, napi_value v, size_t* length) {
  napi_typedarray_type type;
  void* data = NULL;
  size_t len = 0;
  if (napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok) {
    napi_throw_type_error(env, NULL, "native: expected a typed array");
    return NULL;
  }
  if (length) *length = len;
  return data;
}

static double num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

static napi_value js_cpu(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, a, b;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_get_boolean(env, cpu_avx512(), &a));
  CHECK(napi_get_boolean(env, cpu_avx2(), &b));
  CHECK(napi_set_named_property(env, o, "avx512", a));
  CHECK(napi_set_named_property(env, o, "avx2", b));
  return o;
}

static void free_context(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  char* base = typed_data(env, argv[0], NULL);
  if (!base) return NULL;
  char isa[16] = {0};
  size_t len = 0;
  CHECK(napi_get_value_string_utf8(env, argv[2], isa, sizeof isa, &len));
  const sat_isa_table* table = table_for(isa);
  if (!table) {
    napi_throw_error(env, NULL, "native: this CPU cannot run the requested instruction set");
    return NULL;
  }
  context* c = malloc(sizeof *c);
  if (!c) {
    napi_throw_error(env, NULL, "native: out of memory");
    return NULL;
  }
  c->base = base;
  c->args = (double*)(base + (size_t)num(env, argv[1]));
  c->table = table;
  c->threads = (int)num(env, argv[3]);
  if (c->threads < 1) c->threads = 1;
  sat_set_threads(c->threads);
  napi_value ext;
  CHECK(napi_create_external(env, c, free_context, NULL, &ext));
  return ext;
}

static void begin(const context* c) {
  pthread_mutex_lock(&op_mu);
  if (sat_threads() != c->threads) sat_set_threads(c->threads);
}
static void end(void) { pthread_mutex_unlock(&op_mu); }

static napi_value js_run(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  const context* c = get_context(env, argv[0]);
  if (!c) return NULL;
  int32_t op = -1;
  CHECK(napi_get_value_int32(env, argv[1], &op));
  if (op < 0 || op >= OP_COUNT) {
    napi_throw_range_error(env, NULL, "native: unknown op");
    return NULL;
  }
  begin(c);
  c->table->ops[op](c->args, c->base);
  end();
  return NULL;
}

static napi_value js_adamw(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  if (!get_args(env, info, 13, argv)) return NULL;
  const context* c = get_context(env, argv[0]);
  if (!c) return NULL;
  size_t n = 0, ng = 0, nm = 0, nv = 0, nmask = 0;
  float* p = typed_data(env, argv[1], &n);
  const float* g = p ? typed_data(env, argv[2], &ng) : NULL;
  float* m = g ? typed_data(env, argv[3], &nm) : NULL;
  float* v = m ? typed_data(env, argv[4], &nv) : NULL;
  if (!v) return NULL;
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[5], &t));
  const uint8_t* mask = NULL;
  if (t != napi_null && t != napi_undefined) {
    mask = typed_data(env, argv[5], &nmask);
    if (!mask) return NULL;
  }
  if (ng != n || nm != n || nv != n || (mask && nmask != n)) {
    napi_throw_range_error(env, NULL, "native: adamw buffers differ in length");
    return NULL;
  }
  begin(c);
  c->table->adamw(p, g, m, v, mask, n, num(env, argv[6]), num(env, argv[7]), num(env, argv[8]), num(env, argv[9]),
                  num(env, argv[10]), num(env, argv[11]), num(env, argv[12]));
  end();
  return NULL;
}

static napi_value js_sumsq(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  const context* c = get_context(env, argv[0]);
  if (!c) return NULL;
  size_t n = 0;
  const float* x = typed_data(env, argv[1], &n);
  if (!x) return NULL;
  begin(c);
  const double s = c->table->sumsq(x, n);
  end();
  napi_value r;
  CHECK(napi_create_double(env, s, &r));
  return r;
}

static napi_value js_scale(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  const context* c = get_context(env, argv[0]);
  if (!c) return NULL;
  size_t n = 0;
  float* x = typed_data(env, argv[1], &n);
  if (!x) return NULL;
  begin(c);
  c->table->scale(x, n, num(env, argv[2]));
  end();
  return NULL;
}

typedef struct {
  const sat_isa_table* table;
  double ms, gflops;
  pthread_barrier_t* start;
} peak_arg;

static void* peak_main(void* p) {
  peak_arg* a = p;
  pthread_barrier_wait(a->start);
  a->gflops = a->table->fma_peak(a->ms);
  return NULL;
}

static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char isa[16] = {0};
  size_t len = 0;
  CHECK(napi_get_value_string_utf8(env, argv[0], isa, sizeof isa, &len));
  const sat_isa_table* table = table_for(isa);
  if (!table) {
    napi_throw_error(env, NULL, "native: this CPU cannot run the requested instruction set");
    return NULL;
  }
  int threads = (int)num(env, argv[1]);
  if (threads < 1) threads = 1;
  if (threads > SAT_MAX_THREADS) threads = SAT_MAX_THREADS;
  const double ms = num(env, argv[2]);
  /* Dedicated threads started together: the pool's task claiming could run the chains one after another. */
  pthread_t th[SAT_MAX_THREADS];
  peak_arg args[SAT_MAX_THREADS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  int started = 0;
  for (int t = 0; t < threads; t++) {
    args[t] = (peak_arg){table, ms, 0, &start};
    if (t > 0 && pthread_create(&th[t], NULL, peak_main, &args[t]) != 0) break;
    started++;
  }
  double total = 0;
  if (started == threads) {
    peak_main(&args[0]);
    for (int t = 1; t < threads; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < threads; t++) total += args[t].gflops;
  } else {
    /* Could not start them all: the barrier would never open. Report failure as 0. */
    for (int t = 1; t < started; t++) pthread_cancel(th[t]);
  }
  pthread_barrier_destroy(&start);
  napi_value r;
  CHECK(napi_create_double(env, total, &r));
  return r;
}

NAPI_MODULE_INIT() {
  const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {{"cpu", js_cpu},     {"create", js_create}, {"run", js_run},           {"adamw", js_adamw},
             {"sumsq", js_sumsq}, {"scale", js_scale},   {"fmaPeak", js_fma_peak}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  napi_value ops;
  if (napi_create_int32(env, OP_COUNT, &ops) != napi_ok || napi_set_named_property(env, exports, "opCount", ops) != napi_ok)
    return NULL;
  return exports;
}
