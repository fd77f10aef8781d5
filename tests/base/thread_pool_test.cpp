#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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

}  // namespace
}  // namespace dsv3
