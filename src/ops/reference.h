// Scalar references of every op: the definitions each backend kernel is checked against
// (tests/conformance) and that are themselves checked against JAX (tests/parity). Written for
// clarity: double accumulation where it matters, one element at a time, no threads.
//
// validate(args) checks an op's arguments (ranks, shapes, dtypes, contiguity) and throws
// Error(kInvalidArgument, "<op>") naming what is wrong; every backend calls it before running.
#pragma once

#include <cstdint>
#include <span>

#include "batch_forge/ops/attention.h"
#include "batch_forge/ops/elementwise.h"
#include "batch_forge/ops/linear.h"

namespace bf::ops {

void validate(const LinearArgs& args);
void validate(const AttentionArgs& args);
void validate(const KvWriteArgs& args);
void validate(const RmsNormArgs& args);
void validate(const LayerNormArgs& args);
void validate(const RopeArgs& args);
void validate(const UnaryArgs& args);
void validate(const SiluMulArgs& args);
void validate(const SoftmaxArgs& args);
void validate(const EmbeddingArgs& args);
void validate(const AddArgs& args);

// Row `row` of a [rows, k] weight of any weight dtype, as f32 (k values). For f8_e4m3 the
// per-row scale is applied when `scale` is given (else the raw fp8 values).
void dequantize_row(const ConstTensorView& weight, int64_t row, std::span<float> out, const float* scale = nullptr);

namespace ref {

void linear(const LinearArgs& args);
void attention(const AttentionArgs& args);
void kv_write(const KvWriteArgs& args);
void rms_norm(const RmsNormArgs& args);
void layer_norm(const LayerNormArgs& args);
void rope(const RopeArgs& args);
void unary(const UnaryArgs& args);
void silu_mul(const SiluMulArgs& args);
void softmax(const SoftmaxArgs& args);
void embedding(const EmbeddingArgs& args);
void add(const AddArgs& args);

}  // namespace ref
}  // namespace bf::ops
