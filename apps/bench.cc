// PLACEHOLDER until `batch_forge bench` lands (being written now); replaced wholesale.
#include "batch_forge/core/error.h"
#include "commands.h"
namespace bf::app {
int run_bench(const BenchOptions&) { throw Error(ErrorCode::kUnsupported, "bench", "not implemented yet"); }
}  // namespace bf::app
