// The CPU backend's host memory (src/backends/cpu/host_memory.h): blocks are zeroed, 64-byte
// aligned, large ones start on a huge-page boundary, small ones share chunks that are returned
// when their last block goes, in any order of frees, from any thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "backends/cpu/host_memory.h"

namespace bf::cpu {
namespace {

bool all_zero(const HostMemory& m) {
  return std::all_of(m.data(), m.data() + m.size(), [](std::byte b) { return b == std::byte{0}; });
}

uintptr_t address(const HostMemory& m) { return reinterpret_cast<uintptr_t>(m.data()); }

TEST(HostMemory, EmptyBlock) {
  HostMemory m(0);
  EXPECT_EQ(m.data(), nullptr);
  EXPECT_EQ(m.size(), 0u);
}

TEST(HostMemory, LargeBlockIsZeroedAndStartsOnAHugePage) {
  const size_t bytes = kHugePageBytes * 3 + 12345;  // a tail in small pages
  HostMemory m(bytes);
  ASSERT_NE(m.data(), nullptr);
  EXPECT_EQ(m.size(), bytes);
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(address(m) % kHugePageBytes, 0u);
#endif
  EXPECT_EQ(address(m) % 64, 0u);
  EXPECT_TRUE(all_zero(m));
  std::memset(m.data(), 0xAB, bytes);  // every byte is writable, the last included
  EXPECT_EQ(m.data()[bytes - 1], std::byte{0xAB});
}

TEST(HostMemory, SmallBlocksAreDisjointAlignedAndZeroed) {
  // More than one chunk's worth, in sizes that are not multiples of 64.
  std::vector<HostMemory> blocks;
  size_t total = 0;
  for (size_t i = 0; total < 2 * kChunkBytes + kChunkBytes / 2; ++i) {
    const size_t bytes = 1000 + (i * 7919) % (kHugePageBytes - 1000);
    blocks.emplace_back(bytes);
    total += bytes;
  }
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (HostMemory& b : blocks) {
    EXPECT_EQ(address(b) % 64, 0u);
    EXPECT_TRUE(all_zero(b));
    std::memset(b.data(), 0x5A, b.size());  // dirty them: a later block must still come zeroed
    ranges.emplace_back(address(b), address(b) + b.size());
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first);
  // Free every other block, then the rest in reverse; new blocks come zeroed each time.
  for (size_t i = 0; i < blocks.size(); i += 2) blocks[i] = HostMemory();
  HostMemory fresh(5000);
  EXPECT_TRUE(all_zero(fresh));
  for (size_t i = blocks.size(); i-- > 0;) blocks[i] = HostMemory();
  HostMemory again(5000);
  EXPECT_TRUE(all_zero(again));
}

TEST(HostMemory, MoveTransfersOwnership) {
  HostMemory a(4096);
  std::byte* p = a.data();
  HostMemory b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  HostMemory c(kHugePageBytes);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), 4096u);
}

TEST(HostMemory, ThreadsAllocateAndFreeConcurrently) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      std::vector<HostMemory> mine;
      for (int i = 0; i < 200; ++i) {
        mine.emplace_back(static_cast<size_t>(64 + ((i * 131 + t * 17) % 200000)));
        mine.back().data()[0] = std::byte{static_cast<unsigned char>(t)};
        if (i % 3 == 0) mine.erase(mine.begin());
      }
      for (const HostMemory& m : mine) EXPECT_EQ(m.data()[0], std::byte{static_cast<unsigned char>(t)});
    });
  for (std::thread& th : threads) th.join();
}

}  // namespace
}  // namespace bf::cpu
