// Model file v1 (docs/model-format.md): a safetensors file whose metadata carries
// batch_forge.format / family / config. ModelFile reads that metadata and checks a list of
// expected tensors (which the family derives from its config) against the file.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "batch_forge/core/dtype.h"
#include "batch_forge/io/safetensors.h"

namespace bf {

inline constexpr int kModelFormatMajor = 1;
inline constexpr std::string_view kPaddingTensorPrefix = "__bf_pad_";

// Filler tensors the exporter inserts to align the next tensor; every reader skips them.
bool is_padding_tensor(const TensorInfo& t);

// What a family expects to find: a name, an exact shape and the dtypes it can consume.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<DType> dtypes;
};

class ModelFile {
 public:
  // Maps and validates the safetensors layer; reads the batch_forge.* metadata when present.
  // Throws Error: kInvalidFile for a broken file or metadata (format not a version string,
  // config not a JSON object, family missing), kUnsupported for a newer major format.
  static ModelFile open(const std::filesystem::path& path);

  const SafetensorsFile& file() const { return file_; }
  const std::string& path() const { return file_.path(); }

  // False for a plain safetensors file (no batch_forge.format key).
  bool has_model_metadata() const { return has_model_metadata_; }
  const std::string& format_version() const { return format_version_; }  // "1", "1.2"
  const std::string& family() const { return family_; }                  // empty when absent
  const nlohmann::json& config() const { return config_; }               // object; empty when absent

  // Real tensors in file order, padding fillers left out.
  const std::vector<const TensorInfo*>& tensors() const { return tensors_; }
  size_t padding_count() const { return padding_count_; }
  uint64_t padding_bytes() const { return padding_bytes_; }

  // Throws Error(kNotFound) naming the file and the tensor.
  const TensorInfo& tensor(std::string_view name) const;

  // Compares the file's real tensors with `expected`. Returns one line per problem — every
  // missing, unexpected, mis-shaped and wrongly typed tensor, not the first only; empty when the
  // file matches.
  std::vector<std::string> check_tensors(std::span<const ExpectedTensor> expected) const;

 private:
  explicit ModelFile(SafetensorsFile file);

  SafetensorsFile file_;
  bool has_model_metadata_ = false;
  std::string format_version_;
  std::string family_;
  nlohmann::json config_ = nlohmann::json::object();
  std::vector<const TensorInfo*> tensors_;
  size_t padding_count_ = 0;
  uint64_t padding_bytes_ = 0;
};

}  // namespace bf
