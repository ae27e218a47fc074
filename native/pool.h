/*
 * The native thread pool: fork-join over a fixed list of tasks. Which thread runs a task is left
 * to chance (threads claim tasks from one counter, the caller included), so a task must compute
 * the same bits whoever runs it: kernels split work by the shape alone, never by the thread count.
 */
#ifndef SAT_POOL_H
#define SAT_POOL_H

#include <stddef.h>

#define SAT_MAX_THREADS 64

/* task in [0, ntasks); thread in [0, threads) names the runner (0 = the caller) for scratch. */
typedef void (*sat_task_fn)(void* ctx, int task, int thread);

/* Runs fn(ctx, t, ·) for every t < ntasks on up to sat_threads() threads; returns when all are done. */
void sat_parallel(int ntasks, sat_task_fn fn, void* ctx);

/* Threads the next sat_parallel calls may use (the caller included), started on demand. */
void sat_set_threads(int threads);
int sat_threads(void);

/* A 64-byte aligned scratch block of at least `floats` floats private to `thread`, grown on demand
 * (only by that thread); NULL when out of memory. Index 0..SAT_MAX_THREADS-1; slot selects one of
 * two independent blocks per thread. */
float* sat_scratch(int thread, int slot, size_t floats);

#endif
