// The one pool of worker threads. Every parallel loop in dsv3 goes through
// parallel_for so that the thread count is set in one place (-t) and no code
// creates threads of its own.
//
// Results never depend on the number of threads: work is split into tasks that
// write disjoint outputs, and each task computes in a fixed order.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv3 {

class ThreadPool {
 public:
  // threads == 0 means one per hardware thread. The calling thread is one of them.
  explicit ThreadPool(size_t threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size() + 1; }

  // Calls task(i) for every i in [0, n), spread over the pool; returns when all are done.
  // Tasks are handed out one by one, so uneven tasks balance themselves. Not reentrant.
  // The task is passed by reference, never copied into a std::function (which would
  // allocate for larger captures: this runs many times per decoded token).
  template <class Task>
  void parallel_for(size_t n, const Task& task) {
    run(n, TaskRef{&task, [](const void* f, size_t i) { (*static_cast<const Task*>(f))(i); }});
  }

  // Calls body(begin, end) for ranges covering [0, n), about tasks_per_thread of them per
  // thread, each a multiple of `granule` long (the last may be shorter): for loops whose
  // items are too small to be tasks one by one.
  template <class Body>
  void parallel_ranges(int64_t n, int64_t granule, int64_t tasks_per_thread, const Body& body) {
    if (n <= 0) return;
    const int64_t granules = (n + granule - 1) / granule;
    const int64_t tasks = std::min(granules, static_cast<int64_t>(size()) * tasks_per_thread);
    const int64_t per_task = (granules + tasks - 1) / tasks * granule;
    parallel_for(static_cast<size_t>(tasks), [&](size_t i) {
      const int64_t begin = static_cast<int64_t>(i) * per_task, end = std::min(n, begin + per_task);
      if (begin < end) body(begin, end);
    });
  }

 private:
  struct TaskRef {
    const void* object;
    void (*call)(const void*, size_t);
    void operator()(size_t i) const { call(object, i); }
  };
  void run(size_t n, TaskRef task);
  void worker_loop();
  void run_tasks();

  std::vector<std::thread> workers_;
  // A loop: its task and count, published by the generation's increment; every worker takes
  // part in every generation and checks out through active_, so none can touch a loop's
  // state after run() returned.
  TaskRef task_{};
  size_t task_count_ = 0;
  std::atomic<size_t> next_task_{0};
  std::atomic<size_t> active_{0};
  std::atomic<uint64_t> generation_{0};
  // Idle workers spin a while before they sleep: a decoded token runs a loop every few tens of
  // microseconds, about what waking a sleeping thread costs (the loop would be over before
  // the worker joined it). sleepers_ tells run() whether anyone needs waking.
  std::atomic<size_t> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace dsv3
