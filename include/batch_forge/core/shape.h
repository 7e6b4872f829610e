// Shapes and strides of up to kMaxRank dimensions, held inline (no allocation per view).
// Row-major throughout batch_forge: the innermost (fastest-varying) dimension is the last one.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <span>
#include <string>

namespace bf {

inline constexpr int kMaxRank = 8;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  // Throws Error(kInvalidArgument) when there are more than kMaxRank dims or a negative one.
  explicit Shape(std::span<const int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  std::span<const int64_t> dims() const { return {dims_.data(), static_cast<size_t>(rank_)}; }

  // Product of the dims (1 for a scalar), or empty when it overflows int64.
  std::optional<int64_t> checked_numel() const;
  // Product of the dims; the caller knows it fits (shapes of validated tensors).
  int64_t numel() const;

  std::string to_string() const;  // "[4, 16]"; "[]" for a scalar

  friend bool operator==(const Shape& a, const Shape& b);

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Shape& s);

// Element strides of a contiguous row-major tensor of this shape.
Shape contiguous_strides(const Shape& shape);

}  // namespace bf
