#include <array>

#include "backends/cpu/cpu_backend.h"
#include "batch_forge/backends/backend.h"
#include "batch_forge/core/error.h"

namespace bf {
namespace {

// Backends other than the CPU one join here as their issues land; until then they are stubs
// that say so.
constexpr std::array<BackendEntry, 3> kEntries = {{
    {"cpu", true, "always available"},
    {"cuda", false, "not compiled in: the CUDA backend is not implemented yet"},
    {"vulkan", false, "not compiled in: the Vulkan backend is not implemented yet"},
}};

}  // namespace

std::vector<BackendEntry> backend_entries() { return {kEntries.begin(), kEntries.end()}; }

std::vector<std::string> available_backends() {
  std::vector<std::string> out;
  for (const BackendEntry& e : kEntries)
    if (e.compiled_in) out.emplace_back(e.name);
  return out;
}

std::unique_ptr<Backend> create_backend(std::string_view name, const BackendOptions& options) {
  if (name == "cpu") return std::make_unique<cpu::CpuBackend>(options);
  for (const BackendEntry& e : kEntries)
    if (e.name == name) throw Error(ErrorCode::kUnsupported, name, e.note);
  throw Error(ErrorCode::kInvalidArgument, "backend", cat("unknown backend '", name, "' (known: cpu, cuda, vulkan)"));
}

}  // namespace bf
