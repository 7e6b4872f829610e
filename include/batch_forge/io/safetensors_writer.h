// Aligned safetensors writer (docs/model-format.md, "Layout"): the C++ twin of
// python/batch_forge/safetensors_io.py, producing exactly the bytes that build_file() produces for
// the same tensors (same order) and metadata (same order):
//
//   [u64 N][N bytes of JSON, space-padded so (8 + N) % 64 == 0][data, each tensor 64-aligned]
//
// The JSON is what Python's json.dumps(header, separators=(",", ":"), ensure_ascii=False) writes:
// "__metadata__" first (left out when empty), then one entry per tensor in file order with the
// keys dtype, shape, data_offsets; a zero-filled U8 filler "__bf_pad_<k>__" goes before every
// tensor whose offset would not be a multiple of 64.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "batch_forge/core/dtype.h"

namespace bf {

inline constexpr uint64_t kSafetensorsAlignment = 64;

// What the header says about one tensor.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kU8;   // must have a safetensors name; block-quantized bytes are written as U8
  std::vector<int64_t> dims;  // any rank, each ≥ 0
};

// Metadata in the order it is written (a std::map would force sorted order; callers that want
// sorted keys sort them).
using SafetensorsMetadata = std::vector<std::pair<std::string, std::string>>;

// The planned file: the header and where every tensor's bytes go.
struct SafetensorsLayout {
  std::string head;                  // the 8-byte length followed by the padded JSON header
  std::vector<uint64_t> gap_before;  // [tensors] zero bytes (a filler tensor) before each tensor
  std::vector<uint64_t> nbytes;      // [tensors] bytes of each tensor
  uint64_t file_bytes = 0;
};

// Throws Error(kInvalidArgument, "safetensors") naming the tensor for an empty name, the name
// "__metadata__", a name with the reserved filler prefix, a repeated name, a dtype without a
// safetensors name, a negative dimension or a byte count that overflows.
SafetensorsLayout plan_safetensors(std::span<const TensorSpec> tensors, const SafetensorsMetadata& metadata);

// s as a JSON string literal, quoted, escaped as Python's json.dumps(s, ensure_ascii=False):
// \" \\ \b \f \n \r \t, other characters below U+0020 as \u00XX (lowercase hex), the rest as is.
std::string json_quote(std::string_view s);

// Streams one file: the header at construction, then each tensor's bytes in order, then commit()
// renames the temporary file ("<path>.tmp<pid>") onto `path`. Destroyed before commit() — after an
// exception, say — it deletes the temporary file, so `path` never holds a partial file.
class SafetensorsWriter {
 public:
  // Throws the errors of plan_safetensors, and Error(kIo) when the file cannot be created.
  SafetensorsWriter(std::filesystem::path path, std::vector<TensorSpec> tensors, const SafetensorsMetadata& metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The tensor the next write_tensor() call must supply; nullptr when all are written.
  const TensorSpec* next() const;
  // Appends the next tensor's bytes (with its filler first). Throws Error(kInternal) when the size
  // differs from the spec's, Error(kIo) when the system refuses the write.
  void write_tensor(std::span<const std::byte> bytes);
  // Flushes, closes and renames into place; returns the file size. Every tensor must be written.
  uint64_t commit();

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };

  void write_bytes(const void* data, size_t n);

  std::filesystem::path path_;
  std::filesystem::path tmp_path_;
  std::vector<TensorSpec> tensors_;
  SafetensorsLayout layout_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  size_t next_ = 0;
  bool committed_ = false;
};

// One tensor with its bytes, for writing a whole file at once.
struct TensorData {
  TensorSpec spec;
  std::span<const std::byte> bytes;
};

// The whole file in memory (for tests and small files).
std::vector<std::byte> build_safetensors(std::span<const TensorData> tensors, const SafetensorsMetadata& metadata);
// Writes the file through SafetensorsWriter; returns its size.
uint64_t write_safetensors(const std::filesystem::path& path, std::span<const TensorData> tensors,
                           const SafetensorsMetadata& metadata);

}  // namespace bf
