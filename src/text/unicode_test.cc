// Unicode helpers: UTF-8 validation and lossy decoding (Rust's from_utf8_lossy, which Hugging Face
// uses), NFC, and the character classes of the pre-tokenizer patterns. Expected values are from
// Python's unicodedata and bytes.decode("utf-8", "replace"), which substitutes maximal subparts
// as Rust does.
#include <gtest/gtest.h>

#include "text/split_patterns.h"
#include "text/unicode.h"
#include "text/unicode_classes.h"

namespace bf::text {
namespace {

TEST(Utf8, FindsIllFormedSequences) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("ab\xC3"), 2u);            // truncated
  EXPECT_EQ(find_invalid_utf8("\xC0\xAF"), 0u);          // overlong
  EXPECT_EQ(find_invalid_utf8("x\xED\xA0\x80"), 1u);     // surrogate
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("ok\x80"), 2u);            // lone continuation byte
}

TEST(Utf8, LossyReplacesMaximalSubparts) {
  // b"a\xf0\x9f\x98b".decode("utf-8", "replace") == "a\ufffdb": one U+FFFD for the cut emoji.
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
  // b"\xe0\x80\x80" → three U+FFFD: 0x80 cannot follow 0xE0.
  EXPECT_EQ(utf8_lossy("\xE0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // b"\xed\xa0\x80" (a surrogate) → three U+FFFD.
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // b"\xe4\xb8" at the end → one U+FFFD.
  EXPECT_EQ(utf8_lossy("x\xE4\xB8"), "x\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xE4\xB8\xAD"), "\xE4\xB8\xAD");
}

TEST(Unicode, CharacterClasses) {
  EXPECT_TRUE(is_letter(U'a'));
  EXPECT_TRUE(is_letter(U'\u00E9'));
  EXPECT_TRUE(is_letter(U'\u4E2D'));
  EXPECT_TRUE(is_letter(U'\U00020000'));  // CJK Extension B, above the BMP table
  EXPECT_FALSE(is_letter(U'1'));
  EXPECT_FALSE(is_letter(U'\u0301'));  // a combining mark is M, not L
  EXPECT_TRUE(is_number(U'7'));
  EXPECT_TRUE(is_number(U'\u00BD'));      // ½ is No
  EXPECT_TRUE(is_number(U'\u2167'));      // Ⅷ is Nl
  EXPECT_TRUE(is_number(U'\U0001D7CE'));  // mathematical bold digit zero
  EXPECT_FALSE(is_number(U'x'));
  for (const char32_t c : {U'\t', U'\n', U'\v', U'\f', U'\r', U' ', U'\u0085', U'\u00A0', U'\u2028', U'\u3000'})
    EXPECT_TRUE(is_white_space(c)) << static_cast<uint32_t>(c);
  for (const char32_t c : {U'\u001C', U'\u200B', U'\u180E', U'\uFEFF', U'x'})
    EXPECT_FALSE(is_white_space(c)) << static_cast<uint32_t>(c);
}

TEST(Unicode, Nfc) {
  EXPECT_EQ(nfc("plain"), "plain");
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                                 // e + U+0301 → é
  EXPECT_EQ(nfc("a\xCC\xA3\xCC\x82"), "\xE1\xBA\xAD");                     // a + dot below + circumflex → ậ
  EXPECT_EQ(nfc("a\xCC\x82\xCC\xA3"), "\xE1\xBA\xAD");                     // same after canonical ordering
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                              // Å angstrom sign → Å
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo ㄱ ㅏ ㄱ → 각
  EXPECT_EQ(nfc("\xE0\xA4\x95\xE0\xA4\xBC"), "\xE0\xA4\x95\xE0\xA4\xBC");  // excluded: क़ stays decomposed
  EXPECT_EQ(nfc("\xEF\xAC\x81"), "\xEF\xAC\x81");                          // ﬁ is a compatibility form: kept
}

TEST(SplitPatterns, RecognizesOnlyTheKnownPatterns) {
  for (const auto p : {SplitPattern::kGpt2, SplitPattern::kLlama3, SplitPattern::kQwen2})
    EXPECT_EQ(recognize_split_pattern(split_pattern_source(p)), p);
  EXPECT_EQ(recognize_split_pattern("\\s+"), std::nullopt);
}

TEST(SplitPatterns, Gpt2AndLlama3Pieces) {
  const auto pieces = [](SplitPattern p, std::string_view text) {
    const DecodedText d = decode_text(text);
    std::vector<std::string> out;
    for (const auto& [b, e] : find_pattern_matches(p, d.cps))
      out.emplace_back(text.substr(d.offsets[b], d.offsets[e] - d.offsets[b]));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(SplitPattern::kGpt2, "I'm  here 12345!!\n"), (V{"I", "'m", " ", " here", " 12345", "!!", "\n"}));
  EXPECT_EQ(pieces(SplitPattern::kLlama3, "I'M  here 12345!!\n"),
            (V{"I", "'M", " ", " here", " ", "123", "45", "!!\n"}));
  EXPECT_EQ(pieces(SplitPattern::kQwen2, "x 123"), (V{"x", " ", "1", "2", "3"}));
}

TEST(UnicodeTables, SayWhichVersion) { EXPECT_STRNE(unicode_data::kUnicodeVersion, ""); }

}  // namespace
}  // namespace bf::text
