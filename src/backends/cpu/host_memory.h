// Host memory for data the kernels stream: weights (as copied or packed at load), the KV pool,
// activation buffers. It lives in mappings aligned to 2 MiB that the kernel is asked
// (madvise MADV_HUGEPAGE) to back with transparent huge pages where the system allows it
// ("madvise" or "always" in /sys/kernel/mm/transparent_hugepage/enabled; elsewhere nothing
// changes).
//
// Why: a kernel that streams tens of megabytes through 4 KiB pages misses the TLB on every page,
// and the hardware prefetchers stop at each page's end. Measured on this project's 2-core Xeon
// (SmolLM2-135M, 2 threads): q4_0 decode 282 → 330 tok/s, 512-token prefill 2145 → 2552 tok/s,
// and the bench's streaming read bandwidth 21 → 27 GB/s, when the same allocations sit in huge
// pages (how it was measured: docs/cpu-linear.md).
//
// Two sources:
//  * a block of at least kHugePageBytes gets a mapping of its own, 2 MiB aligned; its tail past
//    the last whole huge page stays in small pages, so nothing is rounded up;
//  * a smaller block (a small model's packed projection: SmolLM2's are 0.2–1 MB) is cut from a
//    shared chunk of kChunkBytes, so the weights of one model lie side by side in huge pages. A
//    chunk is never reused piecewise: it is unmapped when its last block is freed (and it is no
//    longer the chunk new blocks come from). Meant for long-lived data — a block that stays pins
//    its whole chunk's touched pages.
// Either way the memory is zeroed (fresh anonymous pages) and 64-byte aligned. Under
// AddressSanitizer both sources fall back to the heap, so overflows stay detected.
#pragma once

#include <cstddef>

namespace bf::cpu {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;
inline constexpr size_t kChunkBytes = size_t{32} << 20;

class HostMemory {
 public:
  HostMemory() = default;
  // Zeroed, 64-byte aligned. Throws Error(kIo) naming the size when the system refuses it.
  explicit HostMemory(size_t bytes);
  ~HostMemory();
  HostMemory(HostMemory&& other) noexcept;
  HostMemory& operator=(HostMemory&& other) noexcept;
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release();

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  void* chunk_ = nullptr;  // the shared chunk the block was cut from; null for an own mapping
};

}  // namespace bf::cpu
