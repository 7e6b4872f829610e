#include "text/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "text/unicode_classes.h"
#include "text/unicode_compositions.h"
#include "text/unicode_decompositions.h"

namespace bf::text {
namespace {

namespace ud = unicode_data;

enum : uint8_t { kLetterBit = 1, kNumberBit = 2, kSpaceBit = 4 };

template <size_t N>
bool in_ranges(const ud::CodePointRange (&ranges)[N], char32_t cp) {
  // First range whose hi is >= cp; the ranges are sorted and disjoint.
  const auto* it = std::lower_bound(std::begin(ranges), std::end(ranges), cp,
                                    [](const ud::CodePointRange& r, char32_t c) { return r.hi < c; });
  return it != std::end(ranges) && it->lo <= cp;
}

template <size_t N>
void mark(std::array<uint8_t, 0x10000>& table, const ud::CodePointRange (&ranges)[N], uint8_t bit) {
  for (const auto& r : ranges)
    for (uint32_t cp = r.lo; cp <= r.hi && cp < table.size(); ++cp) table[cp] |= bit;
}

// The Basic Multilingual Plane, where nearly all text lives, as one 64 KB lookup table built on first
// use; code points above it take a binary search.
const std::array<uint8_t, 0x10000>& bmp_classes() {
  static const auto table = [] {
    std::array<uint8_t, 0x10000> t{};
    mark(t, ud::kLetterRanges, kLetterBit);
    mark(t, ud::kNumberRanges, kNumberBit);
    mark(t, ud::kWhiteSpaceRanges, kSpaceBit);
    return t;
  }();
  return table;
}

}  // namespace

bool is_letter(char32_t cp) {
  return cp < 0x10000 ? (bmp_classes()[cp] & kLetterBit) != 0 : in_ranges(ud::kLetterRanges, cp);
}
bool is_number(char32_t cp) {
  return cp < 0x10000 ? (bmp_classes()[cp] & kNumberBit) != 0 : in_ranges(ud::kNumberRanges, cp);
}
bool is_white_space(char32_t cp) { return cp < 0x10000 && (bmp_classes()[cp] & kSpaceBit) != 0; }

size_t decode_utf8(std::string_view s, size_t i, char32_t* cp) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;  // the allowed range of the second byte (Unicode table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  char32_t c = b0 & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) c = (c << 6) | (byte(i + k) & 0x3F);
  *cp = c;
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  char32_t cp;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode_utf8(s, i, &cp);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  char32_t cp;
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = decode_utf8(bytes, i, &cp);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    // A maximal subpart: the lead byte plus every following byte that could still have continued
    // a well-formed sequence. decode_utf8 failed, so the subpart ends before the sequence would.
    size_t len = 1;
    const uint8_t b0 = static_cast<uint8_t>(bytes[i]);
    const size_t want = b0 >= 0xF0 && b0 <= 0xF4 ? 4 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xC2 && b0 <= 0xDF ? 2 : 1;
    for (; len < want && i + len < bytes.size(); ++len) {
      const uint8_t b = static_cast<uint8_t>(bytes[i + len]);
      uint8_t lo = 0x80, hi = 0xBF;
      if (len == 1) {
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
      }
      if (b < lo || b > hi) break;
    }
    out += "\xEF\xBF\xBD";
    i += len;
  }
  return out;
}

DecodedText decode_text(std::string_view text) {
  DecodedText d;
  d.cps.reserve(text.size());
  d.offsets.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    char32_t cp = 0xFFFD;
    size_t n = decode_utf8(text, i, &cp);
    if (n == 0) n = 1;  // callers validate first; never loop forever on bad bytes
    d.cps.push_back(cp);
    d.offsets.push_back(static_cast<uint32_t>(i));
    i += n;
  }
  d.offsets.push_back(static_cast<uint32_t>(text.size()));
  return d;
}

// --- NFC (UAX #15): full canonical decomposition, canonical ordering, canonical composition. ---

namespace {

constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161, kHangulTBase = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

uint32_t combining_class(char32_t cp) {
  const auto& t = ud::kCombiningClassRanges;
  const auto* it = std::lower_bound(std::begin(t), std::end(t), cp,
                                    [](const ud::CombiningClassRange& r, char32_t c) { return r.hi < c; });
  return it != std::end(t) && it->lo <= cp ? it->ccc : 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kHangulSBase && cp < kHangulSBase + kHangulSCount) {
    const char32_t s = cp - kHangulSBase;
    out.push_back(kHangulLBase + s / kHangulNCount);
    out.push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulTBase + s % kHangulTCount);
    return;
  }
  const auto& t = ud::kDecompositions;
  const auto* it = std::lower_bound(std::begin(t), std::end(t), cp,
                                    [](const ud::Decomposition& d, char32_t c) { return d.code_point < c; });
  if (it == std::end(t) || it->code_point != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);
  if (it->second != 0) decompose(it->second, out);
}

std::optional<char32_t> compose(char32_t a, char32_t b) {
  if (a >= kHangulLBase && a < kHangulLBase + kHangulLCount && b >= kHangulVBase && b < kHangulVBase + kHangulVCount)
    return kHangulSBase + ((a - kHangulLBase) * kHangulVCount + (b - kHangulVBase)) * kHangulTCount;
  if (a >= kHangulSBase && a < kHangulSBase + kHangulSCount && (a - kHangulSBase) % kHangulTCount == 0 &&
      b > kHangulTBase && b < kHangulTBase + kHangulTCount)
    return a + (b - kHangulTBase);
  const auto& t = ud::kCompositions;
  const auto* it =
      std::lower_bound(std::begin(t), std::end(t), std::pair{a, b}, [](const ud::Composition& c, auto key) {
        return std::pair<char32_t, char32_t>{c.first, c.second} < key;
      });
  if (it != std::end(t) && it->first == a && it->second == b) return it->composite;
  return std::nullopt;
}

}  // namespace

std::string nfc(std::string_view text) {
  // Below U+0300 nothing decomposes into something NFC would change and nothing combines, so
  // plain Latin text (the common case) is returned as is.
  DecodedText d = decode_text(text);
  if (std::all_of(d.cps.begin(), d.cps.end(), [](char32_t c) { return c < 0x300; })) return std::string(text);

  std::vector<char32_t> cps;
  cps.reserve(d.cps.size() + 8);
  for (char32_t c : d.cps) decompose(c, cps);

  // Canonical ordering: a stable sort by combining class inside each run of non-starters.
  std::vector<uint32_t> ccc(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) ccc[i] = combining_class(cps[i]);
  for (size_t i = 1; i < cps.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(cps[j], cps[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }

  // Composition: each character joins the last starter unless something between them blocks it
  // (a starter, or a non-starter of the same or higher class).
  std::vector<char32_t> out;
  out.reserve(cps.size());
  std::optional<size_t> starter;
  uint32_t last_ccc = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const uint32_t cc = ccc[i];
    if (starter) {
      const bool adjacent = *starter + 1 == out.size();
      const bool blocked = !adjacent && (last_ccc == 0 || last_ccc >= cc);
      if (!blocked) {
        if (const auto composed = compose(out[*starter], c)) {
          out[*starter] = *composed;
          continue;
        }
      }
    }
    if (cc == 0) {
      starter = out.size();
      last_ccc = 0;
    } else {
      last_ccc = cc;
    }
    out.push_back(c);
  }

  std::string result;
  result.reserve(text.size());
  for (char32_t c : out) append_utf8(result, c);
  return result;
}

}  // namespace bf::text
