// safetensors reader: parses and validates the header, then hands out zero-copy views into the
// mapped file. Format: [u64 little-endian header length N][N bytes of JSON][data section].
//
// A file is rejected, with an Error(kInvalidFile) whose message starts with the source name and
// names the tensor and the broken rule, when: it is shorter than 8 bytes; N is over 100 MB or
// runs past the end of the file; the header is not valid UTF-8 or not valid JSON; the header is
// not a JSON object; "__metadata__" is not an object of string → string; a tensor entry is not an
// object with "dtype" (string), "shape" (array of non-negative integers) and "data_offsets"
// ([begin, end] non-negative integers, begin ≤ end) — other keys in an entry are ignored, as the
// reference library ignores them; a key appears twice in one object; the dtype is unknown; the
// element count overflows; end − begin ≠ elements × dtype size; an offset is past the data
// section; two tensors overlap; tensors leave a gap (sorted by begin, each starts where the
// previous ends, the first at 0); a name appears twice; bytes follow the last tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "batch_forge/core/dtype.h"
#include "batch_forge/core/tensor.h"
#include "batch_forge/io/mapped_file.h"

namespace bf {

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // 100 MB, as the reference

struct TensorInfo {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> dims;  // any rank (a view needs rank ≤ kMaxRank)
  uint64_t begin = 0;         // byte offsets relative to the start of the data section
  uint64_t end = 0;

  uint64_t nbytes() const { return end - begin; }
};

// The validated header of a safetensors file.
struct SafetensorsHeader {
  uint64_t header_bytes = 0;                    // N
  uint64_t data_offset = 0;                     // 8 + N: where the data section starts in the file
  uint64_t data_bytes = 0;                      // size of the data section
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
  std::vector<TensorInfo> tensors;              // sorted by begin offset (file order)
};

// Validates `bytes` (the whole file) and returns its header. `source` names the file in errors.
// Throws Error(kInvalidFile). Never reads outside `bytes`.
SafetensorsHeader parse_safetensors(std::span<const std::byte> bytes, std::string_view source);

class SafetensorsFile {
 public:
  // Maps and validates the file. Throws Error (kNotFound, kIo, kInvalidFile).
  static SafetensorsFile open(const std::filesystem::path& path);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  uint64_t file_size() const { return file_.size(); }

  // nullptr when absent. O(log n).
  const TensorInfo* find(std::string_view name) const;
  // The tensor's bytes inside the mapping (no copy).
  std::span<const std::byte> data(const TensorInfo& t) const;
  // Absolute file offset of the tensor's first byte.
  uint64_t file_offset(const TensorInfo& t) const { return header_.data_offset + t.begin; }
  // A zero-copy view; throws Error(kUnsupported) for rank > kMaxRank.
  ConstTensorView view(const TensorInfo& t) const;
  // The tensor's pages leave the resident set (MappedFile::release); its bytes stay readable.
  void release(const TensorInfo& t) const { file_.release(data(t)); }

 private:
  SafetensorsFile(std::string path, MappedFile file, SafetensorsHeader header);

  std::string path_;
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name → position in header_.tensors
};

}  // namespace bf
