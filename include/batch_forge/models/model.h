// Opening a model: the file layer (ModelFile) plus the family's own reading of its config. One
// place per family parses the config (src/models/<family>/config.cc); this is the way in.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "batch_forge/io/model_file.h"

namespace bf {

struct FamilyInfo {
  std::string_view name;
  // Validates the config (Error(kInvalidFile) naming the field and the rule) and lists the tensors
  // it implies.
  std::vector<ExpectedTensor> (*expected_tensors)(const nlohmann::json& config, std::string_view source);
  // One line for humans: "transformer: 2 layers, dim 64, 4 heads (2 kv) × 16, vocab 256, swiglu, rms".
  std::string (*describe)(const nlohmann::json& config);
};

// Families this build can run; empty list entries are never returned.
std::span<const FamilyInfo> families();
const FamilyInfo* find_family(std::string_view name);

// Opens a batch_forge model file and checks it completely: format version, a family this build
// knows, a valid config, and tensors that match the config exactly. Throws one Error listing every
// problem found (kInvalidFile, or kUnsupported for an unknown family or newer format).
ModelFile open_model(const std::filesystem::path& path);

// The checks of open_model on an already opened file: returns the problems (empty when it is a
// valid model of a known family). Never throws on file content.
std::vector<std::string> validate_model(const ModelFile& file);

}  // namespace bf
