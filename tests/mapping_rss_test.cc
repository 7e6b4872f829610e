// Zero-copy loading: mapping a 1 GiB model file and listing its tensors must not make the file
// resident. The file is sparse (its data pages are holes), so the test is cheap on disk; what is
// measured is this process's resident set before and after.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "batch_forge/io/model_file.h"
#include "support/safetensors_writer.h"

namespace bf {
namespace {

// Resident set size in bytes, from /proc/self/statm (second field, in pages).
uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

TEST(MappingRss, OneGibFileDoesNotBecomeResident) {
  constexpr int kTensors = 256;
  constexpr uint64_t kTensorBytes = uint64_t{4} << 20;  // 256 × 4 MiB = 1 GiB
  // Build the header with empty payloads, then extend the file to the full size with a hole.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  for (int i = 0; i < kTensors; ++i)
    header[cat("layers.", i, ".weight")] = {
        {"dtype", "F32"}, {"shape", {1024, 1024}}, {"data_offsets", {i * kTensorBytes, (i + 1) * kTensorBytes}}};
  const std::vector<uint8_t> bytes = testing::header_bytes(header.dump());
  const auto path = testing::write_temp_file("one_gib.safetensors", bytes);
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(bytes.size() + kTensors * kTensorBytes)), 0);

  const uint64_t before = resident_bytes();
  {
    const ModelFile m = ModelFile::open(path);
    ASSERT_EQ(m.tensors().size(), static_cast<size_t>(kTensors));
    uint64_t listed = 0;
    for (const TensorInfo* t : m.tensors()) listed += m.file().data(*t).size();  // spans only, no reads
    EXPECT_EQ(listed, kTensors * kTensorBytes);
    const uint64_t during = resident_bytes();
    EXPECT_LT(during - std::min(during, before), uint64_t{32} << 20)
        << "mapping and listing 1 GiB grew RSS from " << before << " to " << during << " bytes";
  }
  std::filesystem::remove(path);
}

// A tensor read once (quantized while loading) can leave the resident set: MappedFile::release
// drops its pages, and reading it again gives the same bytes.
TEST(MappingRss, ReleasedTensorLeavesTheResidentSetAndKeepsItsBytes) {
  constexpr uint64_t kTensorBytes = uint64_t{32} << 20;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["a"] = {{"dtype", "F32"}, {"shape", {8192, 1024}}, {"data_offsets", {0, kTensorBytes}}};
  header["b"] = {{"dtype", "F32"}, {"shape", {8192, 1024}}, {"data_offsets", {kTensorBytes, 2 * kTensorBytes}}};
  std::vector<uint8_t> bytes = testing::header_bytes(header.dump());
  const size_t data_offset = bytes.size();
  bytes.resize(data_offset + 2 * kTensorBytes);
  for (size_t i = data_offset; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  const auto path = testing::write_temp_file("release.safetensors", bytes);
  {
    const ModelFile m = ModelFile::open(path);
    const TensorInfo& a = m.tensor("a");
    auto checksum = [&] {
      uint64_t sum = 0;
      for (std::byte b : m.file().data(a)) sum = sum * 31 + static_cast<uint64_t>(b);
      return sum;
    };
    const uint64_t before = resident_bytes();
    const uint64_t first = checksum();
    const uint64_t read = resident_bytes();
    ASSERT_GT(read, before + (kTensorBytes * 3 / 4)) << "reading 32 MiB did not make it resident";
    m.file().release(a);
    const uint64_t released = resident_bytes();
    EXPECT_LT(released, read - (kTensorBytes * 3 / 4)) << "RSS " << read << " → " << released << " after release";
    EXPECT_EQ(checksum(), first) << "the bytes changed after release";
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace bf
