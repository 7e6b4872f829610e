// PLACEHOLDER until the linear reference lands (being written now); replaced wholesale.
#include "batch_forge/core/error.h"
#include "ops/reference.h"
namespace bf::ops {
void validate(const LinearArgs&) {}
void ref::linear(const LinearArgs&) { throw Error(ErrorCode::kUnsupported, "linear", "not implemented"); }
}  // namespace bf::ops
