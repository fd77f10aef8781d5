#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace dsv3 {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskExactlyOnce) {
  for (size_t threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](size_t i) { hits[i]++; });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n << " i " << i;
    }
  }
}

TEST(ThreadPoolTest, ManySmallRoundsInARow) {
  ThreadPool pool(3);
  std::atomic<long> total{0};
  for (int round = 0; round < 2000; ++round) pool.parallel_for(5, [&](size_t i) { total += long(i); });
  EXPECT_EQ(total.load(), 2000L * 10);
}

// Idle workers spin a while, then sleep: loops after pauses longer than the spin must wake
// them (every task still runs once, and the workers take part, not only the caller).
TEST(ThreadPoolTest, SleepingWorkersWakeForTheNextLoop) {
  ThreadPool pool(3);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  for (int round = 0; round < 20; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::vector<std::atomic<int>> hits(6);
    pool.parallel_for(hits.size(), [&](size_t i) {
      {
        std::lock_guard lock(mutex);
        threads.insert(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      hits[i]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "round " << round;
  }
  EXPECT_GT(threads.size(), 1u);
}

}  // namespace
}  // namespace dsv3
