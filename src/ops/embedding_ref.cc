// Embedding gather: argument checks and the scalar reference.
#include <span>

#include "ops/elementwise_checks.h"
#include "ops/reference.h"

namespace bf::ops {

void validate(const EmbeddingArgs& a) {
  constexpr std::string_view op = "embedding";
  switch (a.table.dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kNF4: break;
    default:
      checks::fail(op, cat("table of type ", dtype_name(a.table.dtype),
                           " is not supported (f32, f16, bf16, q8_0, q4_0 or nf4)"));
  }
  checks::rank(op, "table", a.table, 2, "[vocab, dim]");
  checks::rows_dense(op, "table", a.table);
  checks::has_data(op, "table", a.table);
  if (a.n < 0) checks::fail(op, cat("n must be >= 0, got ", a.n));
  checks::f32(op, "y", a.y);
  checks::rank(op, "y", a.y, 2, "[n, dim]");
  if (a.y.shape[0] != a.n || a.y.shape[1] != a.table.shape[1])
    checks::fail(op, cat("y must have shape [", a.n, ", ", a.table.shape[1], "] (n, the table's dim), got ",
                         a.y.shape.to_string()));
  checks::rows_dense(op, "y", a.y);
  checks::has_data(op, "y", a.y);
  if (a.n > 0 && a.ids == nullptr) checks::fail(op, cat("ids is null but n is ", a.n));
  // The caller should already have validated ids; checking again costs one pass over n ints,
  // nothing beside gathering n rows, and turns a bad token id into an error instead of a wild read.
  const int64_t vocab = a.table.shape[0];
  for (int64_t i = 0; i < a.n; ++i)
    if (a.ids[i] < 0 || a.ids[i] >= vocab)
      checks::fail(op, cat("ids[", i, "] = ", a.ids[i], " is outside the table's rows [0, ", vocab, ")"));
}

namespace ref {

// y[i, :] = dequantize_row(table, ids[i]): the definition of every table type's values.
void embedding(const EmbeddingArgs& a) {
  validate(a);
  const int64_t dim = a.table.shape[1];
  for (int64_t i = 0; i < a.n; ++i) {
    float* y = reinterpret_cast<float*>(a.y.data) + i * a.y.strides[0];
    dequantize_row(a.table, a.ids[i], std::span<float>(y, static_cast<size_t>(dim)));
  }
}

}  // namespace ref
}  // namespace bf::ops
