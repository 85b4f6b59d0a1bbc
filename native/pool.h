// A persistent thread pool that spins briefly and then sleeps (a shared 2-core machine must not collapse).
// FATHOM_THREADS sets the size (default: the cores this process may use). Calls are synchronous; a call made
// from inside a task runs serially on the calling thread.
#pragma once
#include <cstdint>

namespace fathom {

typedef void (*task_fn)(void* ctx, int64_t begin, int64_t end);

// Runs fn over [0, n) in chunks of `grain` items claimed dynamically by the pool's threads and the caller.
// grain <= 0 picks ceil(n / (4 * threads)).
void parallel_for_raw(int64_t n, int64_t grain, task_fn fn, void* ctx);
int num_threads();
void set_num_threads(int n);   // n <= 0 restores the default

// Lambda form. Safe in ISA translation units: each lambda type instantiates its own trampoline.
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  struct T { static void run(void* c, int64_t b, int64_t e) { (*static_cast<F*>(c))(b, e); } };
  parallel_for_raw(n, grain, &T::run, static_cast<void*>(&f));
}

}  // namespace fathom
