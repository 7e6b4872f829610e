// PLACEHOLDER until the attention reference lands (being written now); replaced wholesale.
#include "batch_forge/core/error.h"
#include "ops/reference.h"
namespace bf::ops {
void validate(const AttentionArgs&) {}
void ref::attention(const AttentionArgs&) { throw Error(ErrorCode::kUnsupported, "attention", "not implemented"); }
}  // namespace bf::ops
