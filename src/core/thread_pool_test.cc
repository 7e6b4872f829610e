#include "batch_forge/core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace bf {
namespace {

// Each chunk sums its own range in order; chunk sums are combined in chunk order. The result must
// not depend on the thread count because the chunking does not.
std::vector<double> chunked_sums(ThreadPool& pool, const std::vector<float>& x) {
  std::vector<double> out(x.size(), 0.0);
  pool.parallel_for(static_cast<int64_t>(x.size()), 64, [&](int64_t b, int64_t e) {
    double acc = 0;
    for (int64_t i = b; i < e; ++i) out[i] = (acc += x[i]);  // prefix sum within the chunk
  });
  return out;
}

TEST(ThreadPool, CoversTheRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 63, 64, 1000, 4097}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i << " threads=" << threads;
    }
  }
}

TEST(ThreadPool, ResultsDoNotDependOnTheThreadCount) {
  std::vector<float> x(10000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f / static_cast<float>(i + 1);
  ThreadPool one(1);
  const std::vector<double> want = chunked_sums(one, x);
  for (int threads : {2, 3, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(chunked_sums(pool, x), want) << threads << " threads";
  }
}

TEST(ThreadPool, RethrowsAChunkErrorAfterAllChunksFinish) {
  ThreadPool pool(4);
  std::atomic<int64_t> done{0};
  EXPECT_THROW(pool.parallel_for(1000, 10,
                                 [&](int64_t b, int64_t e) {
                                   if (b == 0) throw std::runtime_error("chunk failed");
                                   done += e - b;
                                 }),
               std::runtime_error);
  // The pool stays usable.
  std::atomic<int64_t> total{0};
  pool.parallel_for(100, 1, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total.load(), 100);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  pool.parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) pool.parallel_for(10, 1, [&](int64_t bb, int64_t ee) { total += ee - bb; });
  });
  EXPECT_EQ(total.load(), 80);
}

TEST(ThreadPool, DefaultThreadCountIsPositive) { EXPECT_GE(ThreadPool::default_thread_count(), 1); }

}  // namespace
}  // namespace bf
