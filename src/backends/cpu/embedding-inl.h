// Per ISA level (expanded by foreach_isa.h): one row of f16 or bf16 to f32 (F16C's vcvtph2ps on
// the vector levels; exact, as the scalar conversions of ops/convert.h).
namespace {

template <bool kBf16>
BF_SIMD_FN BF_INLINE Vec load_half(const void* p) {
  if constexpr (kBf16)
    return load_bf16(p);
  else
    return load_f16(p);
}

// src: n 16-bit values at any alignment; dst: n floats.
template <bool kBf16>
BF_SIMD_FN void half_row_to_f32(const std::byte* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(dst + i, load_half<kBf16>(src + 2 * i));
  if (i < n) {  // the tail through a zero-padded copy, so no load runs past the row
    uint16_t tail[kLanes] = {};
    std::memcpy(tail, src + 2 * i, static_cast<size_t>(n - i) * 2);
    store_n(dst + i, load_half<kBf16>(tail), n - i);
  }
}

}  // namespace
