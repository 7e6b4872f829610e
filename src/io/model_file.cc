#include "batch_forge/io/model_file.h"

#include <charconv>
#include <map>

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

}  // namespace

bool is_padding_tensor(const TensorInfo& t) { return t.name.starts_with(kPaddingTensorPrefix); }

ModelFile ModelFile::open(const std::filesystem::path& path) { return ModelFile(SafetensorsFile::open(path)); }

ModelFile::ModelFile(SafetensorsFile file) : file_(std::move(file)) {
  for (const TensorInfo& t : file_.tensors()) {
    if (is_padding_tensor(t)) {
      ++padding_count_;
      padding_bytes_ += t.nbytes();
    } else {
      tensors_.push_back(&t);
    }
  }

  const auto& meta = file_.metadata();
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

const TensorInfo& ModelFile::tensor(std::string_view name) const {
  const TensorInfo* t = file_.find(name);
  if (!t || is_padding_tensor(*t))
    throw Error(ErrorCode::kNotFound, kComponent, cat(path(), ": no tensor named '", name, "'"));
  return *t;
}

std::vector<std::string> ModelFile::check_tensors(std::span<const ExpectedTensor> expected) const {
  std::vector<std::string> problems;
  std::map<std::string_view, const ExpectedTensor*> wanted;
  for (const ExpectedTensor& e : expected) wanted.emplace(e.name, &e);

  for (const ExpectedTensor& e : expected) {
    const TensorInfo* t = file_.find(e.name);
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
