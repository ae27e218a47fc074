/*
 * Fork-join thread pool (see pool.h). A job is published through `seq`; the claim word packs
 * (job sequence << 32 | next task) so a thread that read the parameters of job s can only claim a
 * task while job s is unfinished: the parameters it read are still that job's. Workers spin for a
 * while after a job (ops arrive microseconds apart inside a step) and then sleep on a condition
 * variable; a late or descheduled worker simply finds no task left, so nobody waits on it except
 * for a task it already holds. Compiled without ISA flags: it runs on any x86-64.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a worker polls for the next job before sleeping, and the caller for stragglers. */
#define SPIN_NS 50000L

static pthread_mutex_t dispatch = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cv = PTHREAD_COND_INITIALIZER;

static _Atomic uint32_t seq;
static _Atomic uint64_t claim;
static _Atomic int done;
static _Atomic int sleeping;
static _Atomic(sat_task_fn) job_fn;
static _Atomic(void*) job_ctx;
static _Atomic int job_tasks;
static _Atomic int job_threads;

static int started; /* workers running (threads 1..started) */
static int threads_wanted = 1;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Claims and runs tasks of job s until none is left. */
static void run_tasks(uint32_t s, int thread) {
  const sat_task_fn fn = atomic_load_explicit(&job_fn, memory_order_relaxed);
  void* const ctx = atomic_load_explicit(&job_ctx, memory_order_relaxed);
  const int ntasks = atomic_load_explicit(&job_tasks, memory_order_relaxed);
  if (thread >= atomic_load_explicit(&job_threads, memory_order_relaxed)) return;
  for (;;) {
    uint64_t v = atomic_load_explicit(&claim, memory_order_acquire);
    if ((uint32_t)(v >> 32) != s) return;
    const int t = (int)(uint32_t)v;
    if (t >= ntasks) return;
    if (!atomic_compare_exchange_weak_explicit(&claim, &v, v + 1, memory_order_acq_rel, memory_order_relaxed))
      continue;
    fn(ctx, t, thread);
    atomic_fetch_add_explicit(&done, 1, memory_order_release);
  }
}

static void* worker_main(void* arg) {
  const int thread = (int)(intptr_t)arg;
  uint32_t seen = atomic_load(&seq);
  for (;;) {
    uint32_t s = atomic_load_explicit(&seq, memory_order_acquire);
    if (s == seen) {
      const int64_t until = now_ns() + SPIN_NS;
      for (int i = 0; (s = atomic_load_explicit(&seq, memory_order_acquire)) == seen; i++) {
        cpu_relax();
        if ((i & 63) == 63 && now_ns() > until) break;
      }
    }
    if (s == seen) {
      /* seq_cst pair with the caller's store of seq and load of sleeping (no lost wake-up). */
      atomic_fetch_add(&sleeping, 1);
      pthread_mutex_lock(&sleep_mu);
      while ((s = atomic_load(&seq)) == seen) pthread_cond_wait(&sleep_cv, &sleep_mu);
      pthread_mutex_unlock(&sleep_mu);
      atomic_fetch_sub(&sleeping, 1);
    }
    seen = s;
    run_tasks(s, thread);
  }
  return NULL;
}

void sat_set_threads(int threads) {
  if (threads < 1) threads = 1;
  if (threads > SAT_MAX_THREADS) threads = SAT_MAX_THREADS;
  pthread_mutex_lock(&dispatch);
  while (started < threads - 1) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int ok = pthread_create(&th, &attr, worker_main, (void*)(intptr_t)(started + 1)) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) break; /* fewer threads: still correct, only slower */
    started++;
  }
  threads_wanted = threads <= started + 1 ? threads : started + 1;
  pthread_mutex_unlock(&dispatch);
}

int sat_threads(void) { return threads_wanted; }

void sat_parallel(int ntasks, sat_task_fn fn, void* ctx) {
  if (ntasks <= 0) return;
  const int threads = threads_wanted;
  if (threads <= 1 || ntasks == 1) {
    for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
    return;
  }
  pthread_mutex_lock(&dispatch);
  const uint32_t s = atomic_load_explicit(&seq, memory_order_relaxed) + 1;
  atomic_store_explicit(&job_fn, fn, memory_order_relaxed);
  atomic_store_explicit(&job_ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&job_tasks, ntasks, memory_order_relaxed);
  atomic_store_explicit(&job_threads, threads, memory_order_relaxed);
  atomic_store_explicit(&done, 0, memory_order_relaxed);
  atomic_store_explicit(&claim, (uint64_t)s << 32, memory_order_release);
  atomic_store(&seq, s);
  if (atomic_load(&sleeping) > 0) {
    pthread_mutex_lock(&sleep_mu);
    pthread_cond_broadcast(&sleep_cv);
    pthread_mutex_unlock(&sleep_mu);
  }
  run_tasks(s, 0);
  if (atomic_load_explicit(&done, memory_order_acquire) != ntasks) {
    const int64_t until = now_ns() + SPIN_NS;
    for (int i = 0; atomic_load_explicit(&done, memory_order_acquire) != ntasks; i++) {
      cpu_relax();
      if ((i & 63) == 63 && now_ns() > until) sched_yield(); /* a worker was descheduled mid-task */
    }
  }
  pthread_mutex_unlock(&dispatch);
}

typedef struct {
  float* p[2];
  size_t n[2];
  char pad[64 - 4 * sizeof(void*) % 64];
} scratch_slot;
static scratch_slot scratch[SAT_MAX_THREADS];

float* sat_scratch(int thread, int slot, size_t floats) {
  scratch_slot* s = &scratch[thread];
  if (s->n[slot] >= floats) return s->p[slot];
  free(s->p[slot]);
  size_t n = floats < 4096 ? 4096 : floats + floats / 2;
  n = (n + 15) & ~(size_t)15;
  s->p[slot] = aligned_alloc(64, n * sizeof(float));
  s->n[slot] = s->p[slot] ? n : 0;
  return s->p[slot];
}
