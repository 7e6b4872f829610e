#include "batch_forge/core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

thread_local bool t_inside_pool = false;  // set while a thread runs a chunk

// Enough chunks to balance any realistic core count, few enough that claiming one is cheap.
constexpr int64_t kMaxChunks = 256;

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int /*worker_index*/) {
  uint64_t seen = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    run_chunks(lock);
  }
}

void ThreadPool::run_chunks(std::unique_lock<std::mutex>& lock) {
  while (job_ && next_chunk_ < job_chunks_) {
    const int64_t c = next_chunk_++;
    const auto* fn = job_;
    const int64_t begin = c * job_chunk_, end = std::min(job_n_, begin + job_chunk_);
    lock.unlock();
    std::exception_ptr error;
    t_inside_pool = true;
    try {
      (*fn)(begin, end);
    } catch (...) {
      error = std::current_exception();
    }
    t_inside_pool = false;
    lock.lock();
    if (error && !first_error_) first_error_ = error;
    if (++chunks_done_ == job_chunks_) done_cv_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  // Chunking depends on n and grain only, never on the pool size or timing: a kernel that
  // combines per-chunk partial results in chunk order gets the same bits on 1 or 64 threads.
  const int64_t chunks = std::min((n + grain - 1) / grain, kMaxChunks);
  const int64_t chunk = (n + chunks - 1) / chunks;
  if (chunks == 1 || n_threads_ == 1 || t_inside_pool) {
    for (int64_t begin = 0; begin < n; begin += chunk) fn(begin, std::min(n, begin + chunk));  // same chunks, inline
    return;
  }
  std::lock_guard run_lock(run_mutex_);
  std::unique_lock lock(mutex_);
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  job_chunks_ = (n + job_chunk_ - 1) / job_chunk_;
  next_chunk_ = 0;
  chunks_done_ = 0;
  first_error_ = nullptr;
  ++generation_;
  work_cv_.notify_all();
  run_chunks(lock);  // the caller works too
  done_cv_.wait(lock, [&] { return chunks_done_ == job_chunks_; });
  job_ = nullptr;
  if (first_error_) std::rethrow_exception(std::exchange(first_error_, nullptr));
}

int ThreadPool::default_thread_count() {
  if (const char* env = std::getenv("BATCH_FORGE_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 4096) return static_cast<int>(v);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(default_thread_count());
  return pool;
}

}  // namespace bf
