// Model file v1 (docs/model-format.md): a safetensors file whose metadata carries
// batch_forge.format / family / config. ModelFile reads that metadata and checks a list of
// expected tensors (which the family derives from its config) against the file.
//
// Quantized weights (docs/quantization.md): the metadata key batch_forge.quant maps each quantized
// weight to its scheme and logical shape [n, k]. ModelFile presents such a weight as what it means
// — dtype q8_0 / q4_0 / nf4 / f8_e4m3, dims [n, k] — in tensors(), tensor() and check_tensors(),
// whatever the safetensors header calls its bytes (U8 [n, row bytes] for the block formats), and
// leaves fp8 scale tensors ("<weight>.scale") out of the real tensors, like the padding fillers.
#pragma once

#include <filesystem>
#include <map>
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
inline constexpr std::string_view kQuantMetadataKey = "batch_forge.quant";
inline constexpr std::string_view kQuantScaleSuffix = ".scale";  // fp8_e4m3: "<weight>.scale"

// Filler tensors the exporter inserts to align the next tensor; every reader skips them.
bool is_padding_tensor(const TensorInfo& t);

// What a family expects to find: a name, an exact shape and the dtypes it can consume.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<DType> dtypes;
};

// A weight stored quantized: what it means and where its bytes are.
struct QuantizedTensor {
  std::string scheme;                  // "q8_0", "q4_0", "nf4" or "fp8_e4m3"
  TensorInfo logical;                  // dtype kQ8_0 / kQ4_0 / kNF4 / kF8E4M3, dims [n, k], the stored bytes
  const TensorInfo* stored = nullptr;  // the entry of the safetensors header (U8 or F8_E4M3)
  const TensorInfo* scale = nullptr;   // fp8_e4m3: F32 [n], x[r, i] = fp8(w[r, i]) · scale[r]; else nullptr
};

class ModelFile {
 public:
  // Maps and validates the safetensors layer; reads the batch_forge.* metadata when present.
  // Throws Error: kInvalidFile for a broken file or metadata (format not a version string,
  // config not a JSON object, family missing, a quantization map that does not match the
  // tensors it names), kUnsupported for a newer major format.
  static ModelFile open(const std::filesystem::path& path);

  const SafetensorsFile& file() const { return file_; }
  const std::string& path() const { return file_.path(); }

  // False for a plain safetensors file (no batch_forge.format key).
  bool has_model_metadata() const { return has_model_metadata_; }
  const std::string& format_version() const { return format_version_; }  // "1", "1.2"
  const std::string& family() const { return family_; }                  // empty when absent
  const nlohmann::json& config() const { return config_; }               // object; empty when absent

  // Real tensors in file order, padding fillers and fp8 scales left out; quantized weights appear
  // with their logical dtype and dims.
  const std::vector<const TensorInfo*>& tensors() const { return tensors_; }
  size_t padding_count() const { return padding_count_; }
  uint64_t padding_bytes() const { return padding_bytes_; }

  // Throws Error(kNotFound) naming the file and the tensor. A quantized weight comes back logical.
  const TensorInfo& tensor(std::string_view name) const;

  // nullptr when `name` is not a quantized weight.
  const QuantizedTensor* quantized(std::string_view name) const;
  // The per-row scales of an fp8_e4m3 weight (F32 [n]); nullptr for any other tensor.
  const TensorInfo* scale_tensor(std::string_view weight_name) const;
  size_t quantized_count() const { return quantized_.size(); }

  // Compares the file's real tensors with `expected`. Returns one line per problem — every
  // missing, unexpected, mis-shaped and wrongly typed tensor, not the first only; empty when the
  // file matches.
  std::vector<std::string> check_tensors(std::span<const ExpectedTensor> expected) const;

 private:
  explicit ModelFile(SafetensorsFile file);
  void read_quant_map(const std::string& text);
  // A real tensor by name, logical when quantized; nullptr when absent or not a real tensor.
  const TensorInfo* find_real(std::string_view name) const;

  SafetensorsFile file_;
  bool has_model_metadata_ = false;
  std::string format_version_;
  std::string family_;
  nlohmann::json config_ = nlohmann::json::object();
  std::vector<const TensorInfo*> tensors_;
  size_t padding_count_ = 0;
  uint64_t padding_bytes_ = 0;
  // Node-based, so the TensorInfo pointers in tensors_ survive moving the ModelFile.
  std::map<std::string, QuantizedTensor, std::less<>> quantized_;
};

}  // namespace bf
