#include "backends/cpu/host_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf::cpu {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kHeapOnly = true;  // AddressSanitizer sees overflows of heap blocks, not of mappings
#else
constexpr bool kHeapOnly = false;
#endif

constexpr size_t kSmallPage = 4096;
constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

[[noreturn]] void refuse(size_t bytes) {
  throw Error(ErrorCode::kIo, "cpu", cat("cannot allocate ", bytes, " bytes of host memory"));
}

// A mapping of round_up(bytes, 4 KiB) starting on a 2 MiB boundary, asked for huge pages.
std::byte* map_aligned(size_t bytes) {
  const size_t length = round_up(bytes, kSmallPage);
  const size_t span = length + kHugePageBytes;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) refuse(bytes);
  auto* base = static_cast<std::byte*>(raw);
  auto* start = reinterpret_cast<std::byte*>(round_up(reinterpret_cast<uintptr_t>(base), kHugePageBytes));
  if (start > base) munmap(base, static_cast<size_t>(start - base));
  std::byte* end = start + length;
  if (end < base + span) munmap(end, static_cast<size_t>(base + span - end));
  madvise(start, length, MADV_HUGEPAGE);  // advice only: refused where THP is off, harmless
  return start;
}

void unmap(std::byte* start, size_t bytes) { munmap(start, round_up(bytes, kSmallPage)); }

struct Chunk {
  std::byte* base = nullptr;
  size_t used = 0;  // bytes handed out, from the start; never handed out again
  size_t live = 0;  // blocks not yet freed
};

std::mutex chunks_mutex;
Chunk* current_chunk = nullptr;  // where small blocks are cut from; guarded by chunks_mutex

std::byte* cut(size_t bytes, Chunk*& chunk_out) {
  const size_t need = round_up(bytes, kAlign);
  std::lock_guard lock(chunks_mutex);
  if (!current_chunk || current_chunk->used + need > kChunkBytes) {
    // The chunk given up lives while blocks cut from it do (it has some: a chunk whose last block
    // is freed is unmapped then, current or not); that last free unmaps it.
    std::byte* base = map_aligned(kChunkBytes);
    current_chunk = new Chunk{base, 0, 0};
  }
  std::byte* p = current_chunk->base + current_chunk->used;
  current_chunk->used += need;
  ++current_chunk->live;
  chunk_out = current_chunk;
  return p;
}

void give_back(Chunk* chunk) {
  std::lock_guard lock(chunks_mutex);
  if (--chunk->live > 0) return;
  if (chunk == current_chunk) current_chunk = nullptr;
  unmap(chunk->base, kChunkBytes);
  delete chunk;
}

}  // namespace

HostMemory::HostMemory(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  if (kHeapOnly) {
    data_ = static_cast<std::byte*>(::operator new(bytes, std::align_val_t{kAlign}, std::nothrow));
    if (!data_) refuse(bytes);
    std::memset(data_, 0, bytes);
  } else if (bytes >= kHugePageBytes) {
    data_ = map_aligned(bytes);
  } else {
    Chunk* chunk = nullptr;
    data_ = cut(bytes, chunk);
    chunk_ = chunk;
  }
}

HostMemory::~HostMemory() { release(); }

HostMemory::HostMemory(HostMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      chunk_(std::exchange(other.chunk_, nullptr)) {}

HostMemory& HostMemory::operator=(HostMemory&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    chunk_ = std::exchange(other.chunk_, nullptr);
  }
  return *this;
}

void HostMemory::release() {
  if (!data_) return;
  if (kHeapOnly)
    ::operator delete(data_, std::align_val_t{kAlign});
  else if (chunk_)
    give_back(static_cast<Chunk*>(chunk_));
  else
    unmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  chunk_ = nullptr;
}

}  // namespace bf::cpu
