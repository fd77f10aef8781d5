#include "base/thread_pool.h"

#include <algorithm>

namespace dsv3 {

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

// Takes tasks until none are left; the lock is held between tasks, dropped while one runs.
void ThreadPool::run_tasks(std::unique_lock<std::mutex>& lock) {
  while (next_task_ < task_count_) {
    size_t i = next_task_++;
    const TaskRef task = task_;
    lock.unlock();
    task(i);
    lock.lock();
  }
}

void ThreadPool::worker_loop() {
  size_t seen_generation = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
    if (stopping_) return;
    seen_generation = generation_;
    ++busy_workers_;
    run_tasks(lock);
    if (--busy_workers_ == 0) done_.notify_all();
  }
}

void ThreadPool::run(size_t n, TaskRef task) {
  if (workers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  std::unique_lock lock(mutex_);
  task_ = task;
  task_count_ = n;
  next_task_ = 0;
  ++generation_;
  wake_.notify_all();
  run_tasks(lock);
  done_.wait(lock, [&] { return busy_workers_ == 0; });
  task_ = {};
  task_count_ = 0;
}

}  // namespace dsv3
