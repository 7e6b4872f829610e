// PLACEHOLDER until the element-wise kernels land (being written now); replaced wholesale.
#include "backends/cpu/kernels.h"
#include "batch_forge/core/error.h"
namespace bf::cpu {
std::optional<KernelInfo> elementwise_kernel(const CpuContext&, const OpDesc&) { return std::nullopt; }
#define STUB(op, Args) void op(const CpuContext&, const Args&) { throw Error(ErrorCode::kUnsupported, #op, "not implemented"); }
STUB(rms_norm, RmsNormArgs) STUB(layer_norm, LayerNormArgs) STUB(rope, RopeArgs) STUB(unary, UnaryArgs)
STUB(silu_mul, SiluMulArgs) STUB(softmax, SoftmaxArgs) STUB(embedding, EmbeddingArgs) STUB(add, AddArgs)
}  // namespace bf::cpu
