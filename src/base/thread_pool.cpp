#include "base/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace dsv3 {

namespace {

// How long an idle worker spins before it sleeps.
constexpr auto kSpinTime = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Waits until done(): spinning first, then yielding the core (another process, or a worker
// the OS has not scheduled, may need it).
template <class Done>
void spin_until(const Done& done) {
  for (int i = 0; !done(); ++i)
    if (i < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
}

}  // namespace

ThreadPool::ThreadPool(size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_tasks() {
  for (size_t i; (i = next_task_.fetch_add(1, std::memory_order_relaxed)) < task_count_;) task_(i);
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    const auto idle_since = std::chrono::steady_clock::now();
    for (int i = 0; generation_.load() == seen && !stopping_.load(); ++i) {
      cpu_relax();
      if (i % 256 == 255 && std::chrono::steady_clock::now() - idle_since > kSpinTime) {
        std::unique_lock lock(mutex_);
        ++sleepers_;  // before the check below: run() either sees a sleeper or we see its loop
        wake_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
        --sleepers_;
      }
    }
    if (stopping_.load()) return;
    seen = generation_.load();
    run_tasks();
    active_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::run(size_t n, TaskRef task) {
  if (workers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  task_ = task;
  task_count_ = n;
  next_task_.store(0, std::memory_order_relaxed);
  active_.store(workers_.size(), std::memory_order_relaxed);
  generation_.fetch_add(1);  // publishes the stores above (sequentially consistent)
  if (sleepers_.load() > 0) {
    std::lock_guard lock(mutex_);  // a sleeper is either waiting or about to check again
    wake_.notify_all();
  }
  run_tasks();
  spin_until([&] { return active_.load(std::memory_order_acquire) == 0; });
  task_ = {};
  task_count_ = 0;
}

}  // namespace dsv3
