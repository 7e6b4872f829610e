// PLACEHOLDER until the linear kernels land (being written now); replaced wholesale.
#include "backends/cpu/kernels.h"
#include "batch_forge/core/error.h"
namespace bf::cpu {
std::optional<KernelInfo> linear_kernel(const CpuContext&, const OpDesc&) { return std::nullopt; }
void linear(const CpuContext&, const LinearArgs&) { throw Error(ErrorCode::kUnsupported, "linear", "not implemented"); }
}  // namespace bf::cpu
