// PLACEHOLDER until the attention kernel lands (being written now); replaced wholesale.
#include "backends/cpu/kernels.h"
#include "batch_forge/core/error.h"
namespace bf::cpu {
std::optional<KernelInfo> attention_kernel(const CpuContext&, const OpDesc&) { return std::nullopt; }
void attention(const CpuContext&, const AttentionArgs&) { throw Error(ErrorCode::kUnsupported, "attention", "not implemented"); }
}  // namespace bf::cpu
