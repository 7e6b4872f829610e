// batch_forge quantize IN OUT --scheme S: IN with its eligible weights quantized, byte-identical to
// `python -m batch_forge.quant IN OUT --scheme S` (docs/quantization.md, "Quantized model files").
#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "batch_forge/core/error.h"
#include "batch_forge/core/thread_pool.h"
#include "batch_forge/io/model_file.h"
#include "batch_forge/io/safetensors.h"
#include "batch_forge/io/safetensors_writer.h"
#include "commands.h"
#include "ops/quantize.h"
#include "ops/reference.h"

namespace bf::app {
namespace {

constexpr std::string_view kComponent = "quantize";

// The rule both quantizers apply: rank-2 float weights whose rows are whole blocks. Everything
// else (norms, biases, integer tensors, odd widths) is copied unchanged.
bool is_eligible(const TensorInfo& t, const ops::QuantSchemeInfo& scheme) {
  const bool float_type = t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16;
  return float_type && t.dims.size() == 2 && t.name.ends_with(".weight") && t.dims[0] > 0 && t.dims[1] > 0 &&
         t.dims[1] % scheme.block == 0;
}

// {"name":{"scheme":"q8_0","shape":[n,k]},...}: keys sorted (std::map order is byte order, which
// for UTF-8 is code-point order, as Python's sort_keys), no spaces, UTF-8 unescaped.
std::string quant_map_json(const std::map<std::string, std::vector<int64_t>>& shapes, std::string_view scheme) {
  std::string json = "{";
  for (const auto& [name, dims] : shapes)
    json += cat(json.size() > 1 ? "," : "", json_quote(name), ":{\"scheme\":", json_quote(scheme), ",\"shape\":[",
                dims[0], ",", dims[1], "]}");
  return json + "}";
}

struct Quantized {
  std::vector<std::byte> data;  // [n, row_bytes]
  std::vector<float> scales;    // [n]; fp8_e4m3 only
};

// Rows are independent, so they are spread over the pool; the bytes do not depend on the split.
// When rows fail (a NaN, an overflowing scale), the lowest failing row is reported, whatever the
// timing, so the message is the same on every run.
Quantized quantize_tensor(const SafetensorsFile& in, const TensorInfo& t, ops::QuantScheme scheme) {
  const int64_t n = t.dims[0], k = t.dims[1];
  const int64_t row_bytes = ops::quantized_row_bytes(scheme, k);
  const ConstTensorView w = in.view(t);  // [n, k] f32 / f16 / bf16
  Quantized q;
  q.data.resize(n * row_bytes);
  if (scheme == ops::QuantScheme::kFp8E4M3) q.scales.resize(n);

  std::mutex mutex;
  int64_t failed_row = n;
  std::string failure;
  ThreadPool::global().parallel_for(n, std::max<int64_t>(1, 65536 / k), [&](int64_t begin, int64_t end) {
    std::vector<float> row(k);  // [k]
    for (int64_t r = begin; r < end; ++r) {
      try {
        ops::dequantize_row(w, r, row);
        const float scale = ops::quantize_row(scheme, row, std::span(q.data).subspan(r * row_bytes, row_bytes));
        if (!q.scales.empty()) q.scales[r] = scale;
      } catch (const Error& e) {
        const std::lock_guard lock(mutex);
        if (r < failed_row) failed_row = r, failure = e.message();
        return;
      }
    }
  });
  if (failed_row < n)
    throw Error(ErrorCode::kInvalidFile, kComponent,
                cat(in.path(), ": tensor '", t.name, "' row ", failed_row, ": ", failure,
                    " (a non-finite weight is a bug upstream of the quantizer)"));
  return q;
}

}  // namespace

int run_quantize(const QuantizeOptions& options) {
  const std::optional<ops::QuantScheme> scheme = ops::quant_scheme_from_name(options.scheme);
  if (!scheme)
    throw Error(ErrorCode::kInvalidArgument, kComponent,
                cat("unknown scheme '", options.scheme, "'; expected q8_0, q4_0, nf4 or fp8_e4m3"));
  const ops::QuantSchemeInfo& info = ops::quant_scheme_info(*scheme);
  const SafetensorsFile in = SafetensorsFile::open(options.input);
  if (in.metadata().contains(std::string(kQuantMetadataKey)))
    throw Error(ErrorCode::kInvalidFile, kComponent,
                cat(in.path(), ": already quantized (it has ", kQuantMetadataKey, " metadata)"));

  // Input order: by offset, ties (zero-size tensors) by name. The reader already sorts this way;
  // spelling it out keeps the rule in one visible place, shared with quant.py.
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : in.tensors())
    if (!is_padding_tensor(t)) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });

  std::vector<TensorSpec> specs;
  std::map<std::string, std::vector<int64_t>> quantized_shapes;
  for (const TensorInfo* t : order) {
    if (!is_eligible(*t, info)) {
      specs.push_back({t->name, t->dtype, t->dims});
      continue;
    }
    quantized_shapes.emplace(t->name, t->dims);
    const int64_t n = t->dims[0], k = t->dims[1];
    if (*scheme != ops::QuantScheme::kFp8E4M3) {
      specs.push_back({t->name, DType::kU8, {n, ops::quantized_row_bytes(*scheme, k)}});
      continue;
    }
    const std::string scale_name = t->name + std::string(kQuantScaleSuffix);
    if (in.find(scale_name))
      throw Error(ErrorCode::kInvalidFile, kComponent,
                  cat(in.path(), ": tensor '", scale_name, "' already exists; the fp8_e4m3 scales of '", t->name,
                      "' would take that name"));
    specs.push_back({t->name, DType::kF8E4M3, {n, k}});
    specs.push_back({scale_name, DType::kF32, {n}});
  }

  // Metadata: the input's, verbatim, plus the quantization map; written in sorted key order.
  std::map<std::string, std::string> sorted(in.metadata().begin(), in.metadata().end());
  sorted.emplace(kQuantMetadataKey, quant_map_json(quantized_shapes, info.name));
  const SafetensorsMetadata metadata(sorted.begin(), sorted.end());

  SafetensorsWriter out(options.output, std::move(specs), metadata);
  uint64_t bytes_in = 0, bytes_out = 0;
  for (const TensorInfo* t : order) {
    if (!quantized_shapes.contains(t->name)) {
      out.write_tensor(in.data(*t));  // straight from the mapping
      continue;
    }
    const Quantized q = quantize_tensor(in, *t, *scheme);
    out.write_tensor(q.data);
    if (!q.scales.empty()) out.write_tensor(std::as_bytes(std::span(q.scales)));
    bytes_in += t->nbytes();
    bytes_out += q.data.size() + q.scales.size() * sizeof(float);
  }
  const uint64_t size = out.commit();
  std::printf("%s: %zu of %zu tensors quantized to %s (%llu → %llu bytes), %llu bytes written\n",
              options.output.c_str(), quantized_shapes.size(), order.size(), std::string(info.name).c_str(),
              static_cast<unsigned long long>(bytes_in), static_cast<unsigned long long>(bytes_out),
              static_cast<unsigned long long>(size));
  return 0;
}

}  // namespace bf::app
