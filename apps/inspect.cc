// batch_forge inspect FILE [--json]: what a file holds and whether it is a valid model.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "batch_forge/models/model.h"
#include "commands.h"

namespace bf::app {
namespace {

constexpr uint64_t kWantAlignment = 64;  // DESIGN.md: every tensor on a 64-byte boundary

// Largest power of two (up to 4096) dividing the offset.
uint64_t alignment_of(uint64_t offset) {
  uint64_t a = 1;
  while (a < 4096 && offset % (a * 2) == 0) a *= 2;
  return a;
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

int64_t elements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // validated by the loader: cannot overflow
  return n;
}

struct Summary {
  uint64_t bytes = 0;
  int64_t params = 0;
  size_t aligned = 0;
};

Summary summarize(const ModelFile& m) {
  Summary s;
  for (const TensorInfo* t : m.tensors()) {
    s.bytes += t->nbytes();
    s.params += elements(t->dims);
    s.aligned += (t->nbytes() == 0 || m.file().file_offset(*t) % kWantAlignment == 0);
  }
  return s;
}

std::string family_line(const ModelFile& m) {
  const FamilyInfo* family = find_family(m.family());
  if (!family) return m.family() + " (not supported by this build)";
  try {
    return m.family() + ": " + family->describe(m.config());
  } catch (const Error&) {
    return m.family() + " (config invalid, see below)";
  }
}

int print_json(const ModelFile& m, const std::vector<std::string>& problems) {
  const Summary s = summarize(m);
  nlohmann::json out;
  out["path"] = m.path();
  out["file_bytes"] = m.file().file_size();
  out["header_bytes"] = m.file().header().header_bytes;
  out["data_offset"] = m.file().header().data_offset;
  out["batch_forge_model"] = m.has_model_metadata();
  if (m.has_model_metadata()) {
    out["format"] = m.format_version();
    out["family"] = m.family();
    out["config"] = m.config();
  }
  out["metadata"] = m.file().metadata();
  auto& tensors = out["tensors"] = nlohmann::json::array();
  for (const TensorInfo* t : m.tensors()) {
    const uint64_t offset = m.file().file_offset(*t);
    tensors.push_back({{"name", t->name},
                       {"dtype", dtype_name(t->dtype)},
                       {"shape", t->dims},
                       {"bytes", t->nbytes()},
                       {"offset", offset},
                       {"alignment", alignment_of(offset)}});
  }
  out["totals"] = {{"tensors", m.tensors().size()},
                   {"parameters", s.params},
                   {"bytes", s.bytes},
                   {"aligned_64", s.aligned},
                   {"padding_tensors", m.padding_count()},
                   {"padding_bytes", m.padding_bytes()}};
  out["problems"] = problems;
  out["valid"] = problems.empty();
  std::cout << out.dump(2) << "\n";
  return problems.empty() ? 0 : 1;
}

int print_table(const ModelFile& m, const std::vector<std::string>& problems) {
  const Summary s = summarize(m);
  const auto& h = m.file().header();
  std::printf("file      %s\n", m.path().c_str());
  std::printf("size      %llu bytes (header %llu bytes, data from offset %llu)\n",
              static_cast<unsigned long long>(m.file().file_size()), static_cast<unsigned long long>(h.header_bytes),
              static_cast<unsigned long long>(h.data_offset));
  if (m.has_model_metadata()) {
    std::printf("format    batch_forge model v%s\n", m.format_version().c_str());
    std::printf("family    %s\n", family_line(m).c_str());
    std::printf("config    %s\n", m.config().dump().c_str());
  } else {
    std::printf("format    plain safetensors (no batch_forge metadata)\n");
  }
  // Long values (a tokenizer.json is megabytes) are cut to one readable line; --json has them whole.
  constexpr size_t kShown = 160;
  for (const auto& [key, value] : m.file().metadata()) {
    if (key == "batch_forge.config") continue;
    if (value.size() <= kShown && value.find('\n') == std::string::npos) {
      std::printf("metadata  %s = %s\n", key.c_str(), value.c_str());
      continue;
    }
    std::string shown = value.substr(0, kShown);
    shown = shown.substr(0, shown.find('\n'));
    while (!shown.empty() && (static_cast<unsigned char>(shown.back()) & 0xC0) == 0x80)
      shown.pop_back();  // whole UTF-8
    if (!shown.empty() && static_cast<unsigned char>(shown.back()) >= 0xC0) shown.pop_back();
    std::printf("metadata  %s = %s… (%zu bytes)\n", key.c_str(), shown.c_str(), value.size());
  }

  size_t name_w = 4, shape_w = 5;
  for (const TensorInfo* t : m.tensors()) {
    name_w = std::max(name_w, t->name.size());
    shape_w = std::max(shape_w, dims_string(t->dims).size());
  }
  std::printf("\n%-*s  %-7s  %-*s  %14s  %12s  %5s\n", static_cast<int>(name_w), "name", "dtype",
              static_cast<int>(shape_w), "shape", "bytes", "offset", "align");
  for (const TensorInfo* t : m.tensors()) {
    const uint64_t offset = m.file().file_offset(*t);
    std::printf("%-*s  %-7s  %-*s  %14llu  %12llu  %5llu\n", static_cast<int>(name_w), t->name.c_str(),
                std::string(dtype_name(t->dtype)).c_str(), static_cast<int>(shape_w), dims_string(t->dims).c_str(),
                static_cast<unsigned long long>(t->nbytes()), static_cast<unsigned long long>(offset),
                static_cast<unsigned long long>(alignment_of(offset)));
  }
  std::printf("\ntotal     %zu tensors, %lld parameters, %llu bytes; %zu of %zu start on a %llu-byte boundary",
              m.tensors().size(), static_cast<long long>(s.params), static_cast<unsigned long long>(s.bytes), s.aligned,
              m.tensors().size(), static_cast<unsigned long long>(kWantAlignment));
  if (m.padding_count())
    std::printf("; %zu alignment fillers (%llu bytes) not listed", m.padding_count(),
                static_cast<unsigned long long>(m.padding_bytes()));
  std::printf("\n");
  if (s.aligned != m.tensors().size())
    std::printf("note      unaligned tensors are copied once when a kernel needs alignment\n");
  if (m.has_model_metadata()) {
    if (problems.empty()) {
      std::printf("check     ok: tensors match the %s config\n", m.family().c_str());
    } else {
      std::printf("check     %zu problem%s:\n", problems.size(), problems.size() == 1 ? "" : "s");
      for (const auto& p : problems) std::printf("  - %s\n", p.c_str());
    }
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace

int run_inspect(const InspectOptions& options) {
  const ModelFile m = ModelFile::open(options.path);
  // A plain safetensors file is fine to inspect; only a batch_forge model is held to its config.
  const std::vector<std::string> problems = m.has_model_metadata() ? validate_model(m) : std::vector<std::string>{};
  return options.json ? print_json(m, problems) : print_table(m, problems);
}

}  // namespace bf::app
