// Thread pool: workers wait on a generation counter, waiting awake (FATHOM_SPIN_US, default 250 us) before sleeping on
// a condition variable. A job is "open" while the caller works through it; a worker joins only an open job, and the
// caller closes the job once every chunk is claimed and then waits only for the workers that joined. So a worker
// that is slow to wake (asleep, or descheduled on a busy machine) never delays the caller: tiny calls made right
// after a long one (a decode step's attention after its matmuls) cost what their work costs.
#include "pool.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#include <sched.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define FATHOM_PAUSE() _mm_pause()
#else
#define FATHOM_PAUSE() std::this_thread::yield()
#endif

namespace fathom {
namespace {

int default_threads() {
  if (const char* s = std::getenv("FATHOM_THREADS")) {
    int v = std::atoi(s);
    if (v > 0) return v > 256 ? 256 : v;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int c = CPU_COUNT(&set);
    if (c > 0) return c;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? static_cast<int>(h) : 1;
}

// How long an idle worker waits awake before it sleeps (busy for the first 50 us, then yielding the core between
// checks): long enough to bridge the gaps between the kernels of one decode step (JS work between native calls, a
// median 5-15 us, up to ~50 us around attention), short enough that an idle process stops using cores almost at once.
int64_t spin_us() {
  if (const char* s = std::getenv("FATHOM_SPIN_US")) {
    long v = std::atol(s);
    if (v >= 0) return v > 1000000 ? 1000000 : v;
  }
  return 250;
}

thread_local bool t_in_task = false;

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> sleepers{0};      // workers asleep (or about to sleep) on cv
  // Bit 0: the current job is open to joiners; the rest: 2 x the workers inside it.
  std::atomic<int64_t> state{0};
  std::atomic<int64_t> next{0};      // next item to claim
  std::atomic<bool> stop{false};
  task_fn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0, grain = 1;
  int size = 1;                      // threads including the caller
  int64_t spin = 250;                // microseconds
  std::mutex call_mu;                // one job at a time

  void run_chunks() {
    for (;;) {
      int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= n) break;
      int64_t e = b + grain < n ? b + grain : n;
      fn(ctx, b, e);
    }
  }

  // `seen` is the generation at the time the pool started: a job published before this thread first runs
  // must still be taken (reading the counter here instead would skip it).
  void worker_loop(uint64_t seen) {
    t_in_task = true;
    for (;;) {
      // Spin for the next job, then sleep.
      auto t0 = std::chrono::steady_clock::now();
      int spins = 0;
      bool yielding = false;
      while (generation.load(std::memory_order_seq_cst) == seen && !stop.load(std::memory_order_relaxed)) {
        if (yielding) std::this_thread::yield(); else FATHOM_PAUSE();
        if (++spins == 64 || yielding) {
          spins = 0;
          const auto idle = std::chrono::steady_clock::now() - t0;
          // After a short busy spin, yield between checks: other runnable threads (another process on a shared
          // machine, the caller's own JS thread when oversubscribed) get the core while this one still wakes fast.
          yielding = idle > std::chrono::microseconds(50);
          if (idle > std::chrono::microseconds(spin)) {
            sleepers.fetch_add(1, std::memory_order_seq_cst);
            {
              std::unique_lock<std::mutex> lk(mu);
              cv.wait(lk, [&] { return generation.load(std::memory_order_seq_cst) != seen || stop.load(); });
            }
            sleepers.fetch_sub(1, std::memory_order_relaxed);
            break;
          }
        }
      }
      if (stop.load()) return;
      seen = generation.load(std::memory_order_acquire);
      // Join the open job, if any (the one announced may be closed already; a newer one may be open).
      int64_t s = state.load(std::memory_order_acquire);
      while (s & 1) {
        if (state.compare_exchange_weak(s, s + 2, std::memory_order_acq_rel, std::memory_order_acquire)) {
          run_chunks();
          state.fetch_sub(2, std::memory_order_release);
          break;
        }
      }
    }
  }

  void start(int threads) {
    size = threads < 1 ? 1 : threads;
    spin = spin_us();
    stop = false;
    uint64_t g = generation.load(std::memory_order_acquire);
    for (int i = 1; i < size; i++) workers.emplace_back([this, g] { worker_loop(g); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }

  void run(int64_t n_, int64_t grain_, task_fn fn_, void* ctx_) {
    std::lock_guard<std::mutex> call(call_mu);
    fn = fn_; ctx = ctx_; n = n_; grain = grain_;
    next.store(0, std::memory_order_relaxed);
    state.store(1, std::memory_order_release);           // open (no worker is inside: the last job drained)
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) {  // a sleeper checks the generation under mu before waiting
      { std::lock_guard<std::mutex> lk(mu); }
      cv.notify_all();
    }
    t_in_task = true;
    run_chunks();
    t_in_task = false;
    // Every chunk is claimed: close the job and wait for the workers inside it (they are running chunks).
    state.fetch_and(~int64_t(1), std::memory_order_acq_rel);
    int spins = 0;
    while (state.load(std::memory_order_acquire) != 0) {
      if (++spins < 4096) FATHOM_PAUSE(); else std::this_thread::yield();
    }
  }
};

Pool* g_pool = nullptr;
std::mutex g_pool_mu;

Pool* pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool) {
    g_pool = new Pool();
    g_pool->start(default_threads());
  }
  return g_pool;
}

}  // namespace

void parallel_for_raw(int64_t n, int64_t grain, task_fn fn, void* ctx) {
  if (n <= 0) return;
  Pool* p = pool();
  if (grain <= 0) {
    int64_t parts = 4 * static_cast<int64_t>(p->size);
    grain = (n + parts - 1) / parts;
  }
  if (t_in_task || p->size == 1 || grain >= n) {
    fn(ctx, 0, n);
    return;
  }
  p->run(n, grain, fn, ctx);
}

int num_threads() { return pool()->size; }

void set_num_threads(int n) {
  Pool* p = pool();
  std::lock_guard<std::mutex> call(p->call_mu);
  p->shutdown();
  p->start(n <= 0 ? default_threads() : (n > 256 ? 256 : n));
}

}  // namespace fathom
