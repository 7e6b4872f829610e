#include "batch_forge/core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

thread_local bool t_inside_pool = false;  // set while a thread runs a chunk

// Enough chunks to balance any realistic core count, few enough that claiming one is cheap.
constexpr int64_t kMaxChunks = 256;

// The job word: generation (32 bits) | next chunk to claim (16) | chunks of the job (16). Claiming
// a chunk is one compare-exchange on it, so a worker can never claim a chunk of a job other than
// the one it saw: a stale worker's exchange fails on the generation.
constexpr uint64_t generation_of(uint64_t s) { return s >> 32; }
constexpr uint64_t next_of(uint64_t s) { return (s >> 16) & 0xFFFF; }
constexpr uint64_t total_of(uint64_t s) { return s & 0xFFFF; }
constexpr uint64_t kOneChunk = uint64_t{1} << 16;
// A static job's word carries this in place of the next chunk (> kMaxChunks, so the dynamic
// claim loop sees no chunk left); its chunks are claimed from ThreadPool::shares_ instead.
constexpr uint64_t kStaticMark = 0xFFFF;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

using SpinClock = std::chrono::steady_clock;

}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), shares_(std::make_unique<std::atomic<uint64_t>[]>(n_threads_)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_requested_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int worker_index) {
  uint64_t seen = 0;  // generation of the last job this worker looked at
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    // Spin a while for the next job: in a decode loop it comes within microseconds.
    const auto deadline = SpinClock::now() + std::chrono::microseconds(kSpinMicros);
    for (int i = 0; generation_of(s) == seen; ++i) {
      cpu_relax();
      if ((i & 255) == 255) {
        if (stop_requested_.load(std::memory_order_relaxed) || SpinClock::now() > deadline) break;
      }
      s = state_.load(std::memory_order_acquire);
    }
    if (generation_of(s) == seen) {  // idle: sleep until a job or stop
      std::unique_lock lock(mutex_);
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
      work_cv_.wait(lock, [&] {
        s = state_.load(std::memory_order_seq_cst);
        return stop_ || generation_of(s) != seen;
      });
      sleeping_.fetch_sub(1, std::memory_order_relaxed);
      if (stop_) return;
    }
    if (stop_requested_.load(std::memory_order_relaxed)) return;
    seen = generation_of(s);
    if (next_of(s) == kStaticMark)
      run_shares(seen, static_cast<int64_t>(total_of(s)), worker_index);
    else
      run_chunks(seen);
  }
}

void ThreadPool::run_chunks(uint64_t generation) {
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    do {
      if (generation_of(s) != generation || next_of(s) >= total_of(s)) return;
    } while (!state_.compare_exchange_weak(s, s + kOneChunk, std::memory_order_acq_rel, std::memory_order_acquire));
    run_chunk(static_cast<int64_t>(next_of(s)));
  }
}

void ThreadPool::run_chunk(int64_t c) {
  // The job's fields were written before its generation was published, and stay until every
  // chunk, this claimed one included, is done.
  const int64_t begin = c * job_chunk_, end = std::min(job_n_, begin + job_chunk_);
  t_inside_pool = true;
  try {
    (*job_)(begin, end);
  } catch (...) {
    std::lock_guard lock(error_mutex_);
    if (!first_error_) first_error_ = std::current_exception();
  }
  t_inside_pool = false;
  chunks_done_.fetch_add(1, std::memory_order_acq_rel);
}

void ThreadPool::run_shares(uint64_t generation, int64_t chunks, int self) {
  for (int k = 0; k < n_threads_; ++k) {
    const int t = (self + k) % n_threads_;
    const auto end = static_cast<uint64_t>((t + 1) * chunks / n_threads_);
    uint64_t s = shares_[t].load(std::memory_order_acquire);
    for (;;) {
      // A share of another generation: the job is over (its shares are rewritten only then).
      if (s >> 32 != generation) return;
      if ((s & 0xFFFFFFFF) >= end) break;
      if (!shares_[t].compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      run_chunk(static_cast<int64_t>(s & 0xFFFFFFFF));
      s = shares_[t].load(std::memory_order_acquire);
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                              Schedule schedule) {
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
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  const auto total = static_cast<uint64_t>((n + chunk - 1) / chunk);
  chunks_done_.store(0, std::memory_order_relaxed);
  generation_ = (generation_ + 1) & 0xFFFFFFFF;
  if (generation_ == 0) generation_ = 1;  // 0 is the workers' initial "seen"
  const bool shares = schedule == Schedule::kStatic;
  if (shares)
    for (int t = 0; t < n_threads_; ++t)
      shares_[t].store(generation_ << 32 | static_cast<uint64_t>(t * static_cast<int64_t>(total) / n_threads_),
                       std::memory_order_relaxed);
  // Publish (seq_cst, paired with the sleepers' seq_cst increment of sleeping_: either they see
  // the job, or we see them and wake them).
  state_.store(generation_ << 32 | (shares ? kStaticMark << 16 : 0) | total, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard lock(mutex_);
    work_cv_.notify_all();
  }
  if (shares)  // the caller works too
    run_shares(generation_, static_cast<int64_t>(total), 0);
  else
    run_chunks(generation_);
  // Wait for chunks other threads are still running: spin, then yield.
  const auto deadline = SpinClock::now() + std::chrono::microseconds(kSpinMicros);
  bool spinning = true;
  for (int i = 0; chunks_done_.load(std::memory_order_acquire) < static_cast<int64_t>(total); ++i) {
    if (!spinning) {
      std::this_thread::yield();
      continue;
    }
    cpu_relax();
    if ((i & 255) == 255 && SpinClock::now() > deadline) spinning = false;  // the clock every 256 spins
  }
  std::exception_ptr error;
  {
    std::lock_guard lock(error_mutex_);
    error = std::exchange(first_error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
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
