// PLACEHOLDER until `batch_forge quantize` lands (being written now); replaced wholesale.
#include "batch_forge/core/error.h"
#include "commands.h"
namespace bf::app {
int run_quantize(const QuantizeOptions&) { throw Error(ErrorCode::kUnsupported, "quantize", "not implemented yet"); }
}  // namespace bf::app
