#include "batch_forge/core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace bf {
namespace {

// Each chunk sums its own range in order; chunk sums are combined in chunk order. The result must
// not depend on the thread count because the chunking does not.
std::vector<double> chunked_sums(ThreadPool& pool, const std::vector<float>& x,
                                 Schedule schedule = Schedule::kDynamic) {
  std::vector<double> out(x.size(), 0.0);
  pool.parallel_for(
      static_cast<int64_t>(x.size()), 64,
      [&](int64_t b, int64_t e) {
        double acc = 0;
        for (int64_t i = b; i < e; ++i) out[i] = (acc += x[i]);  // prefix sum within the chunk
      },
      schedule);
  return out;
}

TEST(ThreadPool, CoversTheRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (const Schedule schedule : {Schedule::kDynamic, Schedule::kStatic})
      for (int64_t n : {0, 1, 2, 3, 63, 64, 1000, 4097}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(
            n, 16,
            [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i) hits[i]++;
            },
            schedule);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i << " threads=" << threads
                                       << " static=" << (schedule == Schedule::kStatic);
      }
  }
}

// Static jobs start each thread on its own share: with chunks that wait until every thread has
// started one, each of the 4 threads must have run the first chunk of its share.
TEST(ThreadPool, StaticSharesStartOnTheirOwnThreads) {
  ThreadPool pool(4);
  std::mutex m;
  std::set<std::thread::id> first_chunk_threads;
  std::atomic<int> started{0};
  pool.parallel_for(
      8, 1,
      [&](int64_t b, int64_t) {
        if (b % 2 != 0) return;  // chunks 0, 2, 4, 6 open the shares of threads 0 … 3
        {
          std::lock_guard lock(m);
          first_chunk_threads.insert(std::this_thread::get_id());
        }
        started++;
        // Wait (bounded) for the other shares' first chunks: a thread that took another's share
        // first would leave its own waiting and the set short.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (started.load() < 4 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
      },
      Schedule::kStatic);
  EXPECT_EQ(first_chunk_threads.size(), 4u);
}

// Static and dynamic jobs in quick alternation (workers left behind by one job must not run the
// next one's chunks as the previous one's); the sums must stay exact.
TEST(ThreadPool, AlternatingSchedulesStayExact) {
  ThreadPool pool(3);
  for (int round = 0; round < 2000; ++round) {
    const Schedule schedule = round % 3 == 0 ? Schedule::kDynamic : Schedule::kStatic;
    const int64_t n = 1 + round % 97;
    std::atomic<int64_t> total{0};
    pool.parallel_for(
        n, 1 + round % 5, [&](int64_t b, int64_t e) { total += e - b; }, schedule);
    ASSERT_EQ(total.load(), n) << "round " << round;
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
    EXPECT_EQ(chunked_sums(pool, x, Schedule::kStatic), want) << threads << " threads, static";
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
  EXPECT_EQ(done.load(), 990);
  EXPECT_THROW(pool.parallel_for(
                   1000, 10,
                   [&](int64_t b, int64_t e) {
                     if (b == 500) throw std::runtime_error("chunk failed");
                     done += e - b;
                   },
                   Schedule::kStatic),
               std::runtime_error);
  EXPECT_EQ(done.load(), 990 + 990);
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
