#include "batch_forge/models/model.h"

#include <array>

#include "batch_forge/core/error.h"
#include "models/transformer/config.h"

namespace bf {
namespace {

std::vector<ExpectedTensor> transformer_tensors(const nlohmann::json& config, std::string_view source) {
  return transformer::Config::parse(config, source).expected_tensors();
}
std::string transformer_describe(const nlohmann::json& config) {
  return transformer::Config::parse(config, "config").describe();
}

// Families this build runs. mamba, dit, vit and vlm join as their issues land.
constexpr std::array kFamilies = {
    FamilyInfo{"transformer", &transformer_tensors, &transformer_describe},
};

}  // namespace

std::span<const FamilyInfo> families() { return kFamilies; }

const FamilyInfo* find_family(std::string_view name) {
  for (const FamilyInfo& f : kFamilies)
    if (f.name == name) return &f;
  return nullptr;
}

std::vector<std::string> validate_model(const ModelFile& file) {
  if (!file.has_model_metadata())
    return {
        "no batch_forge.format metadata: a plain safetensors file, not a batch_forge model "
        "(export one with python/export_eqx.py)"};
  const FamilyInfo* family = find_family(file.family());
  if (!family) {
    std::string known;
    for (const FamilyInfo& f : kFamilies) known += (known.empty() ? "" : ", ") + std::string(f.name);
    return {cat("family '", file.family(), "' is not supported by this build (supported: ", known, ")")};
  }
  try {
    return file.check_tensors(family->expected_tensors(file.config(), file.path()));
  } catch (const Error& e) {
    return {e.message()};
  }
}

ModelFile open_model(const std::filesystem::path& path) {
  ModelFile file = ModelFile::open(path);
  const std::vector<std::string> problems = validate_model(file);
  if (problems.empty()) return file;
  const bool unsupported = file.has_model_metadata() && !find_family(file.family());
  std::string message = cat(file.path(), ": not a valid batch_forge model (", problems.size(), " problem",
                            problems.size() == 1 ? "" : "s", "):");
  for (const std::string& p : problems) message += "\n  - " + p;
  throw Error(unsupported ? ErrorCode::kUnsupported : ErrorCode::kInvalidFile, "model", message);
}

}  // namespace bf
