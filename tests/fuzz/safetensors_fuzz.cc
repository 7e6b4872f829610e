// libFuzzer target for the safetensors reader. Any input must either parse into a header that
// obeys the format's invariants or be refused with a user-facing bf::Error; a crash, a sanitizer
// report, any other exception, or an internal check failure (Error kInternal) is a finding.
//
//   build-fuzz/tests/fuzz/bf_safetensors_fuzz -max_total_time=60 -rss_limit_mb=2048 tests/fuzz/seeds
//
// (build setup in tests/fuzz/CMakeLists.txt)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "batch_forge/core/error.h"
#include "batch_forge/core/tensor.h"
#include "batch_forge/io/safetensors.h"

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "bf_safetensors_fuzz: %s\n", what);
  std::abort();
}

// What an accepted header promises its users (ModelFile, views): the tensors tile the data
// section in order, and every tensor of rank ≤ kMaxRank can be viewed over its bytes.
void check_accepted(std::span<const std::byte> file, const bf::SafetensorsHeader& h) {
  if (h.data_offset != 8 + h.header_bytes || h.data_offset + h.data_bytes != file.size())
    finding("header sizes do not add up to the file size");
  uint64_t cursor = 0;
  for (const bf::TensorInfo& t : h.tensors) {
    if (t.begin != cursor || t.end < t.begin || t.end > h.data_bytes) finding("accepted tensors do not tile the data");
    cursor = t.end;
    if (t.dims.size() > static_cast<size_t>(bf::kMaxRank)) continue;
    const auto bytes = file.subspan(h.data_offset + t.begin, t.nbytes());
    const bf::ConstTensorView v = bf::ConstTensorView::contiguous(bytes, t.dtype, bf::Shape(t.dims));
    if (v.data != bytes.data()) finding("view does not point at the tensor's bytes");
  }
  if (cursor != h.data_bytes) finding("accepted file has bytes after the last tensor");
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  try {
    check_accepted(file, bf::parse_safetensors(file, "fuzz.st"));
  } catch (const bf::Error& e) {
    if (e.code() == bf::ErrorCode::kInternal) finding(e.what());
  }
  return 0;
}
