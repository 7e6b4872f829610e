#include "batch_forge/io/model_file.h"

#include <charconv>
#include <limits>
#include <map>
#include <set>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

constexpr std::string_view kComponent = "model";

std::string dims_to_string(std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string dtype_list(std::span<const DType> dtypes) {
  std::string s;
  for (size_t i = 0; i < dtypes.size(); ++i) s += (i ? " or " : "") + std::string(dtype_name(dtypes[i]));
  return s;
}

// "1" → 1, "1.3" → 1; empty on anything that is not digits with an optional ".digits".
std::optional<int> parse_major(std::string_view v) {
  const size_t dot = v.find('.');
  const std::string_view major = v.substr(0, dot);
  if (dot != std::string_view::npos) {
    const std::string_view minor = v.substr(dot + 1);
    if (minor.empty() || minor.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  }
  int value = 0;
  const auto [end, ec] = std::from_chars(major.data(), major.data() + major.size(), value);
  if (ec != std::errc() || end != major.data() + major.size() || major.empty()) return std::nullopt;
  return value;
}

// A scheme of batch_forge.quant and the logical dtype of its weights (dtype_info has the blocks).
struct SchemeLayout {
  std::string_view name;
  DType dtype;
};
constexpr SchemeLayout kSchemes[] = {
    {"q8_0", DType::kQ8_0}, {"q4_0", DType::kQ4_0}, {"nf4", DType::kNF4}, {"fp8_e4m3", DType::kF8E4M3}};

std::optional<int64_t> as_dim(const nlohmann::json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return v.get<int64_t>();
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  return std::nullopt;
}

[[noreturn]] void quant_map_error(const std::string& where, const std::string& name, const std::string& rule) {
  throw Error(ErrorCode::kInvalidFile, kComponent, cat(where, ": entry '", name, "' ", rule));
}

}  // namespace

bool is_padding_tensor(const TensorInfo& t) { return t.name.starts_with(kPaddingTensorPrefix); }

ModelFile ModelFile::open(const std::filesystem::path& path) { return ModelFile(SafetensorsFile::open(path)); }

ModelFile::ModelFile(SafetensorsFile file) : file_(std::move(file)) {
  const auto& meta = file_.metadata();
  // Read first, and independently of batch_forge.format: any safetensors file may be quantized.
  if (const auto quant = meta.find(std::string(kQuantMetadataKey)); quant != meta.end()) read_quant_map(quant->second);
  std::set<const TensorInfo*> scales;
  for (const auto& [name, q] : quantized_)
    if (q.scale) scales.insert(q.scale);
  for (const TensorInfo& t : file_.tensors()) {
    if (is_padding_tensor(t)) {
      ++padding_count_;
      padding_bytes_ += t.nbytes();
    } else if (const auto q = quantized_.find(t.name); q != quantized_.end()) {
      tensors_.push_back(&q->second.logical);
    } else if (!scales.contains(&t)) {
      tensors_.push_back(&t);
    }
  }

  const auto format = meta.find("batch_forge.format");
  if (format == meta.end()) return;  // a plain safetensors file
  has_model_metadata_ = true;
  format_version_ = format->second;
  const auto major = parse_major(format_version_);
  if (!major)
    throw Error(
        ErrorCode::kInvalidFile, kComponent,
        cat(path(), ": batch_forge.format is '", format_version_, "'; expected a version like \"1\" or \"1.0\""));
  if (*major > kModelFormatMajor)
    throw Error(ErrorCode::kUnsupported, kComponent,
                cat(path(), ": model format version ", format_version_, " is newer than this build reads (",
                    kModelFormatMajor, ".x); update batch_forge or re-export with a matching exporter"));
  if (*major < 1)
    throw Error(ErrorCode::kInvalidFile, kComponent,
                cat(path(), ": batch_forge.format '", format_version_, "' is not a released version (1 is the first)"));

  const auto family = meta.find("batch_forge.family");
  if (family == meta.end() || family->second.empty())
    throw Error(
        ErrorCode::kInvalidFile, kComponent,
        cat(path(), ": has batch_forge.format but no batch_forge.family (transformer, mamba, dit, vit or vlm)"));
  family_ = family->second;

  const auto config = meta.find("batch_forge.config");
  if (config == meta.end())
    throw Error(ErrorCode::kInvalidFile, kComponent, cat(path(), ": has batch_forge.format but no batch_forge.config"));
  config_ = nlohmann::json::parse(config->second, nullptr, /*allow_exceptions=*/false);
  if (config_.is_discarded())
    throw Error(ErrorCode::kInvalidFile, kComponent, cat(path(), ": batch_forge.config is not valid JSON"));
  if (!config_.is_object())
    throw Error(ErrorCode::kInvalidFile, kComponent,
                cat(path(), ": batch_forge.config is a JSON ", config_.type_name(), "; expected an object"));
}

void ModelFile::read_quant_map(const std::string& text) {
  const std::string where = cat(path(), ": ", kQuantMetadataKey);
  const nlohmann::json map = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (map.is_discarded()) throw Error(ErrorCode::kInvalidFile, kComponent, cat(where, " is not valid JSON"));
  if (!map.is_object())
    throw Error(ErrorCode::kInvalidFile, kComponent,
                cat(where, " is a JSON ", map.type_name(), "; expected an object {weight: {scheme, shape}}"));
  for (const auto& [name, entry] : map.items()) {
    auto fail = [&](const std::string& rule) { quant_map_error(where, name, rule); };  // throws
    if (!entry.is_object() || !entry.contains("scheme") || !entry.contains("shape"))
      fail("must be an object with \"scheme\" and \"shape\" (other keys are ignored)");
    const nlohmann::json& scheme = entry["scheme"];
    const SchemeLayout* layout = nullptr;
    for (const SchemeLayout& s : kSchemes)
      if (scheme.is_string() && scheme.get_ref<const std::string&>() == s.name) layout = &s;
    if (!layout) fail(cat("has scheme ", scheme.dump(), "; expected \"q8_0\", \"q4_0\", \"nf4\" or \"fp8_e4m3\""));
    const nlohmann::json& shape = entry["shape"];
    const bool pair = shape.is_array() && shape.size() == 2;
    const int64_t n = pair ? as_dim(shape[0]).value_or(-1) : -1;  // [n, k]: the logical shape
    const int64_t k = pair ? as_dim(shape[1]).value_or(-1) : -1;
    if (n < 0 || k < 0) fail(cat("has shape ", shape.dump(), "; expected [n, k] of non-negative integers"));

    const TensorInfo* stored = file_.find(name);
    if (!stored || is_padding_tensor(*stored)) fail("names no tensor of the file");
    const DTypeInfo& info = dtype_info(layout->dtype);
    int64_t row_bytes = 0;
    if (k % info.block_elems != 0 ||
        __builtin_mul_overflow(k / static_cast<int64_t>(info.block_elems), int64_t{info.block_bytes}, &row_bytes))
      fail(cat("has k = ", k, ", which is not a whole number of ", layout->name, " blocks (", info.block_elems, ")"));
    // Block formats are stored as their bytes, U8 [n, row bytes]; fp8 as itself.
    const bool blocked = is_block_quantized(layout->dtype);
    const DType want_dtype = blocked ? DType::kU8 : layout->dtype;
    const std::vector<int64_t> want_dims = {n, blocked ? row_bytes : k};
    if (stored->dtype != want_dtype || stored->dims != want_dims)
      fail(cat("(", layout->name, " [", n, ", ", k, "]) must be stored as ", dtype_info(want_dtype).safetensors_name,
               " ", dims_to_string(want_dims), "; the file has ", dtype_name(stored->dtype), " ",
               dims_to_string(stored->dims)));

    QuantizedTensor q;
    q.scheme = std::string(layout->name);
    q.logical = *stored;
    q.logical.dtype = layout->dtype;
    q.logical.dims = {n, k};
    q.stored = stored;
    if (layout->dtype == DType::kF8E4M3) {
      const std::string scale_name = name + std::string(kQuantScaleSuffix);
      q.scale = file_.find(scale_name);
      if (!q.scale || q.scale->dtype != DType::kF32 || q.scale->dims != std::vector<int64_t>{n})
        fail(cat("is fp8_e4m3 and needs its scales in '", scale_name, "' as F32 [", n, "]; the file has ",
                 q.scale ? cat(dtype_name(q.scale->dtype), " ", dims_to_string(q.scale->dims)) : "no such tensor"));
      if (map.contains(scale_name)) fail(cat("has its scale tensor '", scale_name, "' listed as a quantized weight"));
    }
    quantized_.emplace(name, std::move(q));
  }
}

const TensorInfo* ModelFile::find_real(std::string_view name) const {
  if (const auto q = quantized_.find(name); q != quantized_.end()) return &q->second.logical;
  const TensorInfo* t = file_.find(name);
  if (!t || is_padding_tensor(*t)) return nullptr;
  if (name.ends_with(kQuantScaleSuffix)) {  // an fp8 scale is part of its weight, not a tensor
    const QuantizedTensor* q = quantized(name.substr(0, name.size() - kQuantScaleSuffix.size()));
    if (q && q->scale == t) return nullptr;
  }
  return t;
}

const TensorInfo& ModelFile::tensor(std::string_view name) const {
  const TensorInfo* t = find_real(name);
  if (!t) throw Error(ErrorCode::kNotFound, kComponent, cat(path(), ": no tensor named '", name, "'"));
  return *t;
}

const QuantizedTensor* ModelFile::quantized(std::string_view name) const {
  const auto q = quantized_.find(name);
  return q == quantized_.end() ? nullptr : &q->second;
}

const TensorInfo* ModelFile::scale_tensor(std::string_view weight_name) const {
  const QuantizedTensor* q = quantized(weight_name);
  return q ? q->scale : nullptr;
}

std::vector<std::string> ModelFile::check_tensors(std::span<const ExpectedTensor> expected) const {
  std::vector<std::string> problems;
  std::map<std::string_view, const ExpectedTensor*> wanted;
  for (const ExpectedTensor& e : expected) wanted.emplace(e.name, &e);

  for (const ExpectedTensor& e : expected) {
    const TensorInfo* t = find_real(e.name);
    if (!t) {
      problems.push_back(cat("missing tensor '", e.name, "' ", dims_to_string(e.dims)));
      continue;
    }
    if (t->dims != e.dims)
      problems.push_back(cat("tensor '", e.name, "' has shape ", dims_to_string(t->dims), "; the config implies ",
                             dims_to_string(e.dims)));
    bool dtype_ok = false;
    for (DType d : e.dtypes) dtype_ok |= (d == t->dtype);
    if (!dtype_ok)
      problems.push_back(cat("tensor '", e.name, "' is ", dtype_name(t->dtype), "; expected ", dtype_list(e.dtypes)));
  }
  for (const TensorInfo* t : tensors_)
    if (!wanted.contains(t->name))
      problems.push_back(
          cat("unexpected tensor '", t->name, "' ", dims_to_string(t->dims), " (not implied by the config)"));
  return problems;
}

}  // namespace bf
