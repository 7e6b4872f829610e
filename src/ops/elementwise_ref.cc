// PLACEHOLDER until the element-wise references land (being written now); replaced wholesale.
#include "batch_forge/core/error.h"
#include "ops/reference.h"
namespace bf::ops {
#define STUB(op, Args) void validate(const Args&) {} void ref::op(const Args&) { throw Error(ErrorCode::kUnsupported, #op, "not implemented"); }
STUB(rms_norm, RmsNormArgs) STUB(layer_norm, LayerNormArgs) STUB(rope, RopeArgs) STUB(unary, UnaryArgs)
STUB(silu_mul, SiluMulArgs) STUB(softmax, SoftmaxArgs) STUB(embedding, EmbeddingArgs) STUB(add, AddArgs)
}  // namespace bf::ops
