#include "batch_forge/runtime/stop_strings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

struct Streamed {
  std::string text;  // everything emitted, flush included when no stop matched
  bool stopped = false;
};

Streamed stream(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopMatcher matcher(stops);
  Streamed out;
  for (const std::string& piece : pieces) {
    StopResult r = matcher.push(piece);
    out.text += r.emit;
    if (r.stopped) {
      out.stopped = true;
      break;
    }
  }
  if (!out.stopped) out.text += matcher.flush();
  return out;
}

// Straight from the definition: the match that ends first, the longest among those ending at the
// same byte; the output is the text before it.
Streamed reference(const std::vector<std::string>& stops, const std::string& text) {
  for (size_t end = 1; end <= text.size(); ++end) {
    size_t longest = 0;
    for (const std::string& s : stops)
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0) longest = std::max(longest, s.size());
    if (longest > 0) return {text.substr(0, end - longest), true};
  }
  return {text, false};
}

// The longest suffix of `text` that is a proper prefix of some stop string: what must be held back.
size_t reference_hold(const std::vector<std::string>& stops, const std::string& text) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

TEST(StopMatcher, MatchInsideOnePiece) {
  StopMatcher m({"END"});
  StopResult r = m.push("hello END world");
  EXPECT_EQ(r.emit, "hello ");
  EXPECT_TRUE(r.stopped);
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, MatchAcrossPiecesHoldsBackOnlyPossibleStarts) {
  StopMatcher m({"END"});
  StopResult r = m.push("hel");
  EXPECT_EQ(r.emit, "hel");
  EXPECT_FALSE(r.stopped);
  r = m.push("lo E");
  EXPECT_EQ(r.emit, "lo ");  // "E" may start "END"
  r = m.push("N");
  EXPECT_EQ(r.emit, "");
  EXPECT_FALSE(r.stopped);
  r = m.push("D and more");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, FalseStartIsReleased) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("x EN").emit, "x ");
  StopResult r = m.push("Ds");  // "ENDs" contains "END"
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "");

  StopMatcher n({"END"});
  EXPECT_EQ(n.push("x EN").emit, "x ");
  r = n.push("oh");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.emit, "ENoh");
}

TEST(StopMatcher, OverlappingPrefixes) {
  // "abaabab": the prefix "aba" fails at the second 'a', and the match restarts inside it.
  EXPECT_EQ(stream({"abab"}, {"abaabab"}).text, "aba");
  EXPECT_TRUE(stream({"abab"}, {"abaabab"}).stopped);
  // Every way to cut the text into pieces gives the same result.
  const std::string text = "abaabab";
  for (uint32_t cuts = 0; cuts < (1u << (text.size() - 1)); ++cuts) {
    std::vector<std::string> pieces(1);
    for (size_t i = 0; i < text.size(); ++i) {
      pieces.back() += text[i];
      if (i + 1 < text.size() && (cuts >> i & 1)) pieces.emplace_back();
    }
    const Streamed got = stream({"abab"}, pieces);
    EXPECT_EQ(got.text, "aba") << "cuts " << cuts;
    EXPECT_TRUE(got.stopped) << "cuts " << cuts;
  }

  StopMatcher m({"abab"});
  EXPECT_EQ(m.push("aba").emit, "");   // "aba" may start "abab"
  EXPECT_EQ(m.push("a").emit, "aba");  // "abaa": only the last "a" may still start it
  StopResult r = m.push("bab");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "");  // text "abaabab": the stop string starts at byte 3
}

TEST(StopMatcher, NoMatchThenFlush) {
  StopMatcher m({"abc"});
  EXPECT_EQ(m.push("xxab").emit, "xx");
  EXPECT_EQ(m.flush(), "ab");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, NoStopStringsPassEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("anything at all").emit, "anything at all");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, MultipleStopStrings) {
  EXPECT_EQ(stream({"\n\n", "User:"}, {"Hi", "\nUs", "er: x"}).text, "Hi\n");
  EXPECT_EQ(stream({"\n\n", "User:"}, {"Hi\n", "\nUser:"}).text, "Hi");
  // The match that ends first wins, even when another starts earlier.
  EXPECT_EQ(stream({"abcd", "bc"}, {"abcd"}).text, "a");
  EXPECT_EQ(stream({"abcd", "bc"}, {"a", "b", "c", "d"}).text, "a");
  // Matches ending at the same byte: the longest wins.
  EXPECT_EQ(stream({"b", "ab"}, {"xab"}).text, "x");
  // Held-back text is the longest tail that starts any stop string.
  StopMatcher m({"xyz", "yzw"});
  EXPECT_EQ(m.push("axy").emit, "a");
  EXPECT_EQ(m.push("z!").emit, "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, MultiByteUtf8AcrossPieces) {
  // "世界" is six bytes; the pieces cut it in the middle of a character.
  const std::string stop = "\xe4\xb8\x96\xe7\x95\x8c";
  const Streamed got = stream({stop}, {"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8", "\x96\xe7", "\x95\x8c!"});
  EXPECT_TRUE(got.stopped);
  EXPECT_EQ(got.text, "\xe4\xbd\xa0\xe5\xa5\xbd");
}

TEST(StopMatcher, AfterAStopEverythingIsDropped) {
  StopMatcher m({"."});
  EXPECT_EQ(m.push("one. two").emit, "one");
  StopResult r = m.push("three");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, RejectsBadStopStrings) {
  try {
    StopMatcher m({"a", ""});
    FAIL() << "an empty stop string was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("stop string 1 is empty"), std::string::npos) << e.what();
  }
  std::vector<std::string> many(StopMatcher::kMaxStopStrings + 1, "x");
  try {
    StopMatcher m(many);
    FAIL() << "17 stop strings were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("at most 16"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(StopMatcher(std::vector<std::string>(StopMatcher::kMaxStopStrings, "x")));
}

// Random texts over a small alphabet (so partial matches are frequent), random stop strings and
// random cuts, against the definition: the output, and after every piece exactly the text that
// can no longer start a stop string has been emitted.
TEST(StopMatcher, RandomTextsMatchTheDefinition) {
  std::mt19937 gen(7);
  auto rand_string = [&](size_t min_len, size_t max_len) {
    std::string s(std::uniform_int_distribution<size_t>(min_len, max_len)(gen), 'a');
    for (char& c : s) c = static_cast<char>('a' + std::uniform_int_distribution<int>(0, 2)(gen));
    return s;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops(std::uniform_int_distribution<size_t>(1, 4)(gen));
    for (std::string& s : stops) s = rand_string(1, 6);
    const std::string text = rand_string(0, 40);

    StopMatcher m(stops);
    std::string emitted, fed;
    bool stopped = false;
    for (size_t pos = 0; pos < text.size() && !stopped;) {
      const size_t len = std::min(text.size() - pos, std::uniform_int_distribution<size_t>(0, 7)(gen));
      const std::string piece = text.substr(pos, len);
      pos += len;
      fed += piece;
      StopResult r = m.push(piece);
      emitted += r.emit;
      stopped = r.stopped;
      if (!stopped) {
        ASSERT_EQ(emitted, fed.substr(0, fed.size() - reference_hold(stops, fed)))
            << "trial " << trial << " text '" << text << "' after '" << fed << "'";
      }
    }
    if (!stopped) emitted += m.flush();
    const Streamed want = reference(stops, text);
    ASSERT_EQ(stopped, want.stopped) << "trial " << trial << " text '" << text << "'";
    ASSERT_EQ(emitted, want.text) << "trial " << trial << " text '" << text << "'";
  }
}

}  // namespace
}  // namespace bf
