// The one thread pool of the process. Kernels split work with parallel_for, whose chunking
// depends only on the range and the grain (never on the thread count or on timing), so a kernel
// computes the same bits whatever the number of threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bf {

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
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

  // The process-wide pool, created on first use with default_thread_count() threads.
  static ThreadPool& global();
  // Cores this process may run on (sched_getaffinity), or BATCH_FORGE_THREADS when set (≥ 1).
  static int default_thread_count();

 private:
  void worker_loop(int worker_index);
  // Claims and runs chunks of the job in flight until none is left; `lock` holds mutex_.
  void run_chunks(std::unique_lock<std::mutex>& lock);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::mutex run_mutex_;  // serializes parallel_for calls from different threads
  // State of the job in flight, guarded by mutex_.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_chunk_ = 0;
  int64_t job_chunks_ = 0;
  int64_t next_chunk_ = 0;
  int64_t chunks_done_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr first_error_;
  bool stop_ = false;
};

}  // namespace bf
