// Linear on the CPU: which kernel runs, what supports_op calls it, and the dispatch (once per call;
// the kernels pick their ISA functions once and spread rows over the pool). Arguments arrive
// validated (ops::validate in src/ops/linear_ref.cc). The kernels live in linear_*.cc
// (linear_internal.h lists them).
//
// The sides:
//   vendor   f32 weights: OpenBLAS sgemv (m = 1) / sgemm on row ranges of the weight; other
//            types: rows dequantized to f32 in a per-thread scratch, then the same calls.
//   packed   q8_0 / q4_0 weights that come prepared (LinearArgs::packed, made at load time by
//            pack_linear_weight): one int8 micro-kernel family for every m, whose rows of y do not
//            depend on m (linear_packed.cc). Under every preference but kVendor, on every ISA.
//            Packed ÷ natural-layout custom time, 2 threads, the shapes 4096² and 4096 × 11008
//            (bench group "linear"; quiet runs on a 16-core Xeon host restricted to 2 cores, as
//            this 2-core machine's other tenants made its runs swing 2×): AVX-512 GEMV m = 1
//            0.84–0.99×, m = 8 0.57–0.78×, GEMM m = 32 0.72–0.96×, m = 128 0.97–1.03×; AVX2
//            (4096²) m = 1 0.75–1.01×, m = 128 0.54–0.68× (against the GEMV 4 rows at a time).
//   custom   q8_0 / q4_0: activations quantized to int8 blocks once per call, integer dot
//            products: GEMV for m ≤ kGemvMaxRows (every ISA), above it the AVX-512 VNNI GEMM over
//            packed panels (AVX2 / scalar: the GEMV, 4 rows at a time). f16 / bf16 / f8_e4m3 /
//            nf4 GEMV on AVX-512: converted in registers. Everything else: our f32 tile kernels
//            (f32 weights in place, other types over dequantized panels).
// kAuto, from the bench/linear_bench.cc group "linear" (every shape × m = 1, 8, 32, 128, both
// sides) and interleaved A/B runs on the 2-core Zen 4/5 development machine, 2 threads:
//   AVX-512: custom for every type and shape; custom ÷ vendor time, min–max over the shapes:
//     f32 GEMV 1.01–1.5× (both stream the weight), GEMM 1.04–2.0× (this OpenBLAS runs its
//     Haswell kernels); q8_0 / q4_0 GEMV 1.5–5.7×, GEMM 1.4–8.3× (dequantize-and-sgemm);
//     nf4 / f8_e4m3 / bf16 / f16 GEMV 1.3–4.5×, GEMM over dequantized panels 1.1–2.2×.
//   AVX2, scalar: our int8 GEMV for q8_0 / q4_0 decode (3.6× dequantize-and-sgemv at the AVX2
//     level); the vendor side for everything else, where our AVX2 f32 tiles only match
//     OpenBLAS (−5 … +2 %) and the q-types' GEMM by GEMV rows is 7 % behind dequantize-and-sgemm.
#include "backends/cpu/kernels.h"
#include "backends/cpu/linear_internal.h"
#include "batch_forge/core/error.h"

namespace bf::cpu {
namespace {

enum class Path {
  kBlas,         // OpenBLAS on f32 weights
  kBlasDequant,  // OpenBLAS on dequantized rows
  kGemvInt8,     // q8_0 / q4_0 × int8, few rows
  kGemmInt8,     // q8_0 / q4_0 × int8, AVX-512 VNNI panels
  kPackedInt8,   // q8_0 / q4_0 repacked at load time × int8, every m
  kFloat,        // our f32 tiles (any weight type)
};

bool is_q8_q4(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0; }

bool is_weight_type(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kNF4: return true;
    default: return false;
  }
}

Path custom_path(Isa isa, DType t, int64_t m) {
  if (!is_q8_q4(t)) return Path::kFloat;
  return m > lin::kGemvMaxRows && isa == Isa::kAvx512 ? Path::kGemmInt8 : Path::kGemvInt8;
}

Path vendor_path(DType t) { return t == DType::kF32 ? Path::kBlas : Path::kBlasDequant; }

// kAuto (measurements in the header comment): on AVX-512 our kernels for everything; below it our
// int8 GEMV for q8_0 / q4_0 decode and the vendor side for the rest.
// Packed weights take the packed kernels on every ISA unless the vendor side is forced (and
// batch_invariant does not override it): their rows of y do not depend on m.
Path choose(const CpuContext& ctx, DType t, int64_t m, bool packed) {
  if (packed && is_q8_q4(t) && (ctx.kernels != KernelPreference::kVendor || ctx.batch_invariant))
    return Path::kPackedInt8;
  // Row-invariant: the int8 GEMV kernels run any m in groups of ≤ 4 rows, each row with its own
  // accumulators; the f32 tiles sum each output along k in an order set by k alone (see
  // linear_float.cc). Both give a row the same bits whatever else is in the call.
  if (ctx.batch_invariant) return is_q8_q4(t) ? Path::kGemvInt8 : Path::kFloat;
  switch (ctx.kernels) {
    case KernelPreference::kVendor: return vendor_path(t);
    case KernelPreference::kCustom: return custom_path(ctx.isa, t, m);
    case KernelPreference::kAuto: break;
  }
  if (ctx.isa == Isa::kAvx512) return custom_path(ctx.isa, t, m);
  if (is_q8_q4(t) && m <= lin::kGemvMaxRows) return Path::kGemvInt8;
  return vendor_path(t);
}

std::string_view isa_label(Isa isa, bool int8) {
  switch (isa) {
    case Isa::kAvx512: return int8 ? "avx512-vnni" : "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: break;
  }
  return "scalar";
}

std::string kernel_name(Path path, Isa isa, DType t, int64_t m, bool fused_gemv, bool amx) {
  const std::string_view type = dtype_name(t);
  const char* shape = m <= lin::kGemvMaxRows ? "gemv" : "gemm";
  switch (path) {
    case Path::kBlas: return m == 1 ? "openblas sgemv" : "openblas sgemm";
    case Path::kBlasDequant: return cat(type, " dequant + openblas ", m == 1 ? "sgemv" : "sgemm");
    case Path::kGemvInt8: return cat(type, " gemv int8 ", isa_label(isa, true));
    case Path::kGemmInt8: return cat(type, " gemm int8 ", isa_label(isa, true));
    case Path::kPackedInt8:
      return cat(type, " ", shape, " int8 ", amx && m >= lin::kAmxMinRows ? "amx" : isa_label(isa, true), " (packed)");
    case Path::kFloat:
      if (t == DType::kF32 || fused_gemv) return cat(type, " ", fused_gemv ? "gemv" : shape, " ", isa_label(isa, false));
      return cat(type, " ", shape, " f32 ", isa_label(isa, false), " (dequantized panels)");
  }
  return "?";
}

lin::Problem make_problem(const LinearArgs& a) {
  lin::Problem p;
  p.m = a.x.shape[0];
  p.n = a.weight.shape[0];
  p.k = a.weight.shape[1];
  p.x = reinterpret_cast<const float*>(a.x.data);
  p.ldx = a.x.strides[0];
  p.wtype = a.weight.dtype;
  p.w = a.weight.data;
  p.w_row_bytes = a.weight.strides[0] * static_cast<int64_t>(dtype_info(a.weight.dtype).block_bytes);
  p.scale = reinterpret_cast<const float*>(a.scale.data);
  p.bias = reinterpret_cast<const float*>(a.bias.data);
  p.y = reinterpret_cast<float*>(a.y.data);
  p.ldy = a.y.strides[0];
  return p;
}

// args.packed as ours, checked against the logical weight; null when there is none.
const lin::PackedLinear* packed_of(const LinearArgs& args) {
  if (!args.packed) return nullptr;
  const auto* packed = dynamic_cast<const lin::PackedLinear*>(args.packed);
  if (!packed) throw Error(ErrorCode::kInvalidArgument, "linear", "the packed weight was not made by the cpu backend");
  const ConstTensorView& w = args.weight;
  if (packed->dtype != w.dtype || packed->n != w.shape[0] || packed->k != w.shape[1])
    throw Error(ErrorCode::kInvalidArgument, "linear",
                cat("the packed weight is ", dtype_name(packed->dtype), " [", packed->n, ", ", packed->k,
                    "] but the weight is ", dtype_name(w.dtype), " ", w.shape.to_string()));
  return packed;
}

}  // namespace

// f16 / bf16 / f8_e4m3 / nf4 on AVX-512: the register-converting GEMV for few rows; under
// batch_invariant for every m, since its per-row sums differ from the dequantized-panel tiles'.
bool use_fused_gemv(const CpuContext& ctx, DType t, int64_t m) {
  return (m <= lin::kGemvMaxRows || ctx.batch_invariant) && lin::has_fused_gemv(ctx.isa, t);
}

std::optional<KernelInfo> linear_kernel(const CpuContext& ctx, const OpDesc& desc) {
  if (desc.kind != OpKind::kLinear || !is_weight_type(desc.dtype)) return std::nullopt;
  const Path path = choose(ctx, desc.dtype, desc.m, desc.packed);
  return KernelInfo{kernel_name(path, ctx.isa, desc.dtype, desc.m, use_fused_gemv(ctx, desc.dtype, desc.m), ctx.amx),
                    path == Path::kBlas || path == Path::kBlasDequant};
}

std::shared_ptr<const PackedWeight> pack_linear_weight(const CpuContext& ctx, const ConstTensorView& w) {
  if (!is_q8_q4(w.dtype)) return nullptr;
  auto fail = [&](std::string_view what) {
    throw Error(ErrorCode::kInvalidArgument, "linear",
                cat("cannot pack the ", dtype_name(w.dtype), " weight ", w.shape.to_string(), ": ", what));
  };
  if (w.shape.rank() != 2 || w.shape[0] < 1 || w.shape[1] < 1) fail("expected shape [out ≥ 1, in ≥ 1]");
  if (w.shape[1] % 32 != 0) fail("the input size must be a multiple of the block size 32");
  if (w.strides.rank() != 2 || w.strides[1] != 1 || w.strides[0] < w.shape[1] / 32)
    fail(cat("rows must be contiguous, got strides ", w.strides.to_string()));
  if (w.data == nullptr) fail("it has no data");
  return lin::pack_q8_q4(ctx, w);
}

void linear(const CpuContext& ctx, const LinearArgs& args) {
  const lin::Problem p = make_problem(args);
  const lin::PackedLinear* packed = packed_of(args);
  if (p.m == 0) return;
  switch (choose(ctx, p.wtype, p.m, packed != nullptr)) {
    case Path::kBlas:
    case Path::kBlasDequant: return lin::vendor_linear(ctx, p, packed);
    case Path::kFloat:
      if (use_fused_gemv(ctx, p.wtype, p.m)) return lin::fgemv_avx512(ctx, p);
      return lin::fgemm(ctx, p);
    case Path::kGemvInt8: {
      thread_local lin::QuantizedActs acts;  // reused between calls of this thread
      const lin::QLayoutSpec spec = lin::qgemv_layout(ctx.isa, p.wtype);
      lin::quantize_acts(ctx, p, spec.layout, spec.corr_mult, acts);
      return lin::qgemv(ctx, p, acts);
    }
    case Path::kGemmInt8: {
      if (p.w_row_bytes >= lin::kGemmMaxRowBytes) {  // rows too far apart for the packing's gathers
        thread_local lin::QuantizedActs gemv_acts;
        const lin::QLayoutSpec spec = lin::qgemv_layout(ctx.isa, p.wtype);
        lin::quantize_acts(ctx, p, spec.layout, spec.corr_mult, gemv_acts);
        return lin::qgemv(ctx, p, gemv_acts);
      }
      thread_local lin::QuantizedActs acts;
      lin::quantize_acts(ctx, p, lin::QLayout::kU8, 0, acts);
      return lin::qgemm_avx512(ctx, p, acts);
    }
    case Path::kPackedInt8: {
      thread_local lin::QuantizedActs acts;
      const lin::QLayoutSpec spec = lin::packed_layout(ctx.isa, p.wtype);
      lin::quantize_acts(ctx, p, spec.layout, spec.corr_mult, acts);
      return lin::packed_linear(ctx, p, *packed, acts);
    }
  }
}

}  // namespace bf::cpu
