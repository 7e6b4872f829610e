// The one thread pool of the process. Kernels split work with parallel_for, whose chunking
// depends only on the range and the grain (never on the thread count or on timing), so a kernel
// computes the same bits whatever the number of threads.
//
// A decode step of a small model is a few hundred parallel_for calls of tens of microseconds each,
// so waking a sleeping thread (a futex round trip, 5–50 µs) per call would cost as much as the
// work. Workers therefore spin on the job counter for a while after each job (kSpinMicros) before
// they sleep on the condition variable, chunks are claimed with an atomic counter, and the caller
// spins for the last chunks in flight. An idle pool costs nothing after kSpinMicros.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace bf {

// How a job's chunks meet the threads. Dynamic: each thread claims the next free chunk. Static:
// thread t (the caller is 0) first runs the chunks of its own share, chunks [t·C/T, (t+1)·C/T)
// of C, and only then helps with the others'; so an op that splits rows the way the previous one
// did finds its rows in its own core's cache (on a 2-core KVM Xeon a 1.2 MB buffer written by one
// core read at 82 GB/s there and 22 GB/s from the other). Which thread runs a chunk never
// changes the chunks themselves, nor therefore the bits.
enum class Schedule { kDynamic, kStatic };

class ThreadPool {
 public:
  // n_threads counts the calling thread, which always takes part: 1 means no worker threads.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on contiguous chunks covering [0, n), at least `grain` items each
  // (except the last; at most 256 chunks), spread over the pool; returns when all are done. The first exception a
  // chunk throws is rethrown here after every chunk has finished. Not reentrant: a chunk must
  // not call parallel_for on the same pool (it runs inline instead if it does).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn,
                    Schedule schedule = Schedule::kDynamic);

  // The process-wide pool, created on first use with default_thread_count() threads.
  static ThreadPool& global();
  // Cores this process may run on (sched_getaffinity), or BATCH_FORGE_THREADS when set (≥ 1).
  static int default_thread_count();

 private:
  static constexpr int64_t kSpinMicros = 200;

  void worker_loop(int worker_index);
  // Claims and runs chunks of job `generation` until none is left (or another job replaced it).
  void run_chunks(uint64_t generation);
  // The same for a static job of `chunks` chunks, thread `self`'s share first.
  void run_shares(uint64_t generation, int64_t chunks, int self);
  // Runs claimed chunk c of the current job, keeping its first exception, and counts it done.
  void run_chunk(int64_t c);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;  // guards sleeping: work_cv_ waits and stop_
  std::condition_variable work_cv_;
  std::mutex run_mutex_;  // serializes parallel_for calls from different threads
  // The job in flight. Written by the caller before state_ publishes its generation and read by
  // workers only after they claimed one of its chunks; constant until every chunk is done.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_chunk_ = 0;
  int64_t job_chunks_ = 0;
  uint64_t generation_ = 0;         // of the last job; written under run_mutex_ only
  std::atomic<uint64_t> state_{0};  // the job word: generation | next chunk | chunks (thread_pool.cc)
  std::atomic<int64_t> chunks_done_{0};
  // Static jobs: per thread, generation (32 bits) | next chunk of its share (32).
  std::unique_ptr<std::atomic<uint64_t>[]> shares_;
  std::atomic<int> sleeping_{0};  // workers blocked (or about to block) on work_cv_
  std::atomic<bool> stop_requested_{false};
  std::mutex error_mutex_;
  std::exception_ptr first_error_;  // guarded by error_mutex_
  bool stop_ = false;               // guarded by mutex_
};

}  // namespace bf
