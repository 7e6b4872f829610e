// Embedding gather from every table type on every backend variant against ops::ref::embedding
// (bit-exact: a gather only converts), and the argument checks of the element-wise ops: bad
// arguments are errors that name the op, the argument and the rule.
#include <cstring>
#include <random>

#include "batch_forge/ops/quant.h"
#include "elementwise_support.h"
#include "ops/convert.h"
#include "ops/reference.h"

namespace bf::conformance {
namespace {

// A [vocab, dim] table of `dtype` with random valid contents: every 16-bit pattern for f16 / bf16
// (±inf, NaN and subnormals included), random codes and finite f16 scales for the block types.
std::vector<std::byte> random_table(DType dtype, int64_t vocab, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t bytes = *dtype_bytes(dtype, static_cast<uint64_t>(vocab * dim));
  std::vector<std::byte> table(bytes);
  for (auto& b : table) b = static_cast<std::byte>(rng());
  auto fix_scales = [&](size_t block_bytes) {  // the first 2 bytes of every block: a finite f16
    std::normal_distribution<float> scale(0.0f, 0.05f);
    for (size_t at = 0; at < bytes; at += block_bytes) {
      const uint16_t h = f32_to_f16(scale(rng));
      std::memcpy(&table[at], &h, 2);
    }
  };
  if (dtype == DType::kF32) {  // finite floats
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (size_t at = 0; at < bytes; at += 4) {
      const float v = dist(rng);
      std::memcpy(&table[at], &v, 4);
    }
  }
  if (dtype == DType::kQ8_0) fix_scales(sizeof(BlockQ8_0));
  if (dtype == DType::kQ4_0) fix_scales(sizeof(BlockQ4_0));
  if (dtype == DType::kNF4) fix_scales(sizeof(BlockNF4));
  return table;
}

TEST_P(BackendTest, EmbeddingGathersEveryTableType) {
  const int64_t vocab = 50;
  uint64_t seed = 900;
  for (const DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kNF4}) {
    const int64_t block = dtype_info(dtype).block_elems;
    for (const int64_t dim : {block, 5 * block, 4096 + 2 * 64 + block}) {  // odd multiples of the block
      const auto bytes = random_table(dtype, vocab, dim, seed++);
      const ConstTensorView table = ConstTensorView::contiguous(bytes, dtype, Shape{vocab, dim});
      std::vector<int32_t> ids;
      for (int i = 0; i < 37; ++i) ids.push_back(static_cast<int32_t>((i * 13 + 7) % vocab));
      ids.push_back(0), ids.push_back(vocab - 1), ids.push_back(0);  // the ends, and a repeat
      const int64_t n = static_cast<int64_t>(ids.size());
      EmbeddingArgs a;
      a.table = table;
      a.ids = ids.data();
      a.n = n;
      std::vector<float> want(n * dim);
      a.y = view_of(want, Shape{n, dim});
      ops::ref::embedding(a);
      ASSERT_TRUE(backend().supports_op({OpKind::kEmbedding, dtype})) << dtype_name(dtype);
      check_op(
          backend(), GetParam(),
          [&](Backend& b, std::vector<float>& out) {
            EmbeddingArgs c = a;
            c.y = view_of(out, Shape{n, dim});
            b.embedding(c);
          },
          want, {0, 0}, cat("embedding ", dtype_name(dtype), " dim ", dim));
    }
  }
}

TEST_P(BackendTest, EmbeddingReadsPaddedTableRowsAtAnyAlignment) {
  // f16 rows 40 elements apart (33 used), starting at an odd address: loads must not assume
  // alignment or density.
  const int64_t vocab = 6, dim = 33, stride = 40;
  std::vector<std::byte> storage(1 + vocab * stride * 2);
  std::mt19937_64 rng(42);
  for (auto& b : storage) b = static_cast<std::byte>(rng());
  ConstTensorView table;
  table.data = storage.data() + 1;
  table.dtype = DType::kF16;
  table.shape = Shape{vocab, dim};
  table.strides = Shape{stride, 1};
  const std::vector<int32_t> ids = {5, 0, 3};
  EmbeddingArgs a;
  a.table = table;
  a.ids = ids.data();
  a.n = 3;
  std::vector<float> want(3 * dim), got(3 * dim);
  a.y = view_of(want, Shape{3, dim});
  ops::ref::embedding(a);
  a.y = view_of(got, Shape{3, dim});
  backend().embedding(a);
  EXPECT_TRUE(close_or_same_special(got, want, {0, 0}));
}

TEST_P(BackendTest, ElementwiseOpsRejectBadArguments) {
  Backend& b = backend();
  std::vector<float> x(8 * 6, 1.0f), y(8 * 6), w(5);
  const ConstTensorView x86 = const_view_of(x, Shape{8, 6});

  RmsNormArgs rms;
  rms.x = x86;
  rms.y = view_of(y, Shape{8, 6});
  rms.weight = const_view_of(w, Shape{5});
  EXPECT_TRUE(rejects([&] { b.rms_norm(rms); }, "rms_norm", "weight must have shape [6]"));
  rms.weight = {};
  rms.eps = -1.0f;
  EXPECT_TRUE(rejects([&] { b.rms_norm(rms); }, "rms_norm", "eps must be finite and >= 0"));
  rms.eps = 1e-5f;
  rms.x.dtype = DType::kF16;
  EXPECT_TRUE(rejects([&] { b.rms_norm(rms); }, "rms_norm", "x must be f32, got f16"));

  LayerNormArgs ln;
  ln.x = const_view_of(x, Shape{2, 4, 6});
  ln.y = view_of(y, Shape{2, 4, 6});
  EXPECT_TRUE(rejects([&] { b.layer_norm(ln); }, "layer_norm", "x must have rank 2 [rows, dim]"));

  SoftmaxArgs sm;
  sm.x = x86;
  sm.y = view_of(y, Shape{6, 8});
  EXPECT_TRUE(rejects([&] { b.softmax(sm); }, "softmax", "y has shape [6, 8] but x has [8, 6]"));
  sm.y = view_of(y, Shape{8, 6});
  sm.y.strides = Shape{3, 1};  // rows overlapping each other
  EXPECT_TRUE(rejects([&] { b.softmax(sm); }, "softmax", "y has stride 3 in dim 0"));

  RopeArgs rope;
  rope.x = view_of(x, Shape{2, 3, 8});
  EXPECT_TRUE(rejects([&] { b.rope(rope); }, "rope", "positions is null"));
  const std::vector<int32_t> positions = {0, 1, 2, 3};
  rope.positions = positions.data();
  rope.x = view_of(x, Shape{4, 4, 3});
  EXPECT_TRUE(rejects([&] { b.rope(rope); }, "rope", "head_dim (the last dim of x) must be even, got 3"));

  UnaryArgs un;
  un.x = ConstTensorView::contiguous(std::as_bytes(std::span(x)).subspan(0, 160), DType::kF32, Shape{40});
  un.y = TensorView::contiguous(std::as_writable_bytes(std::span(x)).subspan(8, 160), DType::kF32, Shape{40});
  EXPECT_TRUE(rejects([&] { b.unary(un); }, "unary", "y overlaps x without being the same view"));
  un.y = TensorView::contiguous(std::as_writable_bytes(std::span(y)).subspan(0, 160), DType::kF32, Shape{40});
  un.op = static_cast<UnaryOp>(17);
  EXPECT_TRUE(rejects([&] { b.unary(un); }, "unary", "op is not a UnaryOp"));

  AddArgs add;
  add.a = const_view_of(x, Shape{48});
  add.b = ConstTensorView::contiguous(std::as_bytes(std::span(y)).subspan(0, 47 * 4), DType::kF32, Shape{47});
  add.y = view_of(y, Shape{48});
  EXPECT_TRUE(rejects([&] { b.add(add); }, "add", "b has shape [47] but a has [48]"));

  SiluMulArgs sm2;
  sm2.gate = const_view_of(x, Shape{6, 8});
  sm2.gate.strides = Shape{1, 6};  // transposed: neither contiguous nor rows apart
  sm2.up = const_view_of(x, Shape{6, 8});
  sm2.y = view_of(y, Shape{6, 8});
  EXPECT_TRUE(rejects([&] { b.silu_mul(sm2); }, "silu_mul", "gate must have stride 1 in its last dim"));

  const ConstTensorView table = const_view_of(x, Shape{8, 6});
  std::vector<int32_t> ids = {1, 7, 8, 2};
  EmbeddingArgs emb;
  emb.table = table;
  emb.ids = ids.data();
  emb.n = 4;
  emb.y = TensorView::contiguous(std::as_writable_bytes(std::span(y)).subspan(0, 24 * 4), DType::kF32, Shape{4, 6});
  EXPECT_TRUE(rejects([&] { b.embedding(emb); }, "embedding", "ids[2] = 8 is outside the table's rows [0, 8)"));
  ids[2] = -1;
  EXPECT_TRUE(rejects([&] { b.embedding(emb); }, "embedding", "ids[2] = -1 is outside"));
  ids[2] = 3;
  emb.table.dtype = DType::kF8E4M3;
  EXPECT_TRUE(rejects([&] { b.embedding(emb); }, "embedding", "table of type f8_e4m3 is not supported"));
}

TEST_P(BackendTest, ElementwiseOpsAcceptEmptyTensors) {
  Backend& b = backend();
  std::vector<float> none;
  for (const Shape& shape : {Shape{0, 8}, Shape{3, 0}}) {
    RmsNormArgs rms;
    rms.x = const_view_of(none, shape);
    rms.y = view_of(none, shape);
    EXPECT_NO_THROW(b.rms_norm(rms)) << shape;
    LayerNormArgs ln;
    ln.x = rms.x;
    ln.y = rms.y;
    EXPECT_NO_THROW(b.layer_norm(ln)) << shape;
    SoftmaxArgs sm;
    sm.x = rms.x;
    sm.y = rms.y;
    EXPECT_NO_THROW(b.softmax(sm)) << shape;
  }
  const std::vector<int32_t> positions = {0, 1};
  for (const Shape& shape : {Shape{0, 2, 4}, Shape{2, 0, 4}, Shape{2, 2, 0}}) {
    RopeArgs rope;
    rope.x = view_of(none, shape);
    rope.positions = shape[0] ? positions.data() : nullptr;
    EXPECT_NO_THROW(b.rope(rope)) << shape;
  }
  UnaryArgs un;
  un.x = const_view_of(none, Shape{0});
  un.y = view_of(none, Shape{0});
  EXPECT_NO_THROW(b.unary(un));
  SiluMulArgs sm;
  sm.gate = sm.up = un.x;
  sm.y = un.y;
  EXPECT_NO_THROW(b.silu_mul(sm));
  AddArgs add;
  add.a = add.b = un.x;
  add.y = un.y;
  EXPECT_NO_THROW(b.add(add));
  std::vector<float> table(4 * 8, 1.0f);
  EmbeddingArgs emb;
  emb.table = const_view_of(table, Shape{4, 8});
  emb.y = view_of(none, Shape{0, 8});
  EXPECT_NO_THROW(b.embedding(emb));  // n = 0, ids null
}

TEST_P(BackendTest, ElementwiseOpsSupportF32AndSayWhichKernel) {
  for (const OpKind kind : {OpKind::kRmsNorm, OpKind::kLayerNorm, OpKind::kRope, OpKind::kUnary, OpKind::kSiluMul,
                            OpKind::kSoftmax, OpKind::kAdd}) {
    const auto info = backend().supports_op({kind, DType::kF32});
    ASSERT_TRUE(info) << op_kind_name(kind);
    EXPECT_NE(info->name.find(op_kind_name(kind)), std::string::npos) << info->name;
    EXPECT_FALSE(info->vendor);
    EXPECT_FALSE(backend().supports_op({kind, DType::kF16})) << op_kind_name(kind) << " on f16 activations";
  }
  EXPECT_FALSE(backend().supports_op({OpKind::kEmbedding, DType::kF8E4M3}));
}

}  // namespace
}  // namespace bf::conformance
