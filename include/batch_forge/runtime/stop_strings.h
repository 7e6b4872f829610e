// Stop strings for streamed text: the generation ends where one of the request's stop strings
// appears in the decoded text, and the client sees the text before it (OpenAI / vLLM: the stop
// string itself is not part of the output).
//
// Text arrives in pieces (one per decoded token) and a stop string may span several pieces, so
// the matcher holds back the longest tail of the text that is still the start of some stop
// string, and releases it once it can no longer become one (or at flush()).
//
// Which match wins: the one that ends first in the text; among those ending at the same byte,
// the longest (it starts earliest). This is what reading the text one byte at a time would
// find, so the result never depends on how the text was cut into pieces.
//
// Matching is on bytes, with one Knuth-Morris-Pratt automaton per stop string: each byte costs
// amortized O(number of stop strings), and the held-back text is shorter than the longest stop
// string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bf {

struct StopResult {
  std::string emit;      // text that is final and may be sent to the client
  bool stopped = false;  // a stop string matched: `emit` ends just before it; nothing follows
};

class StopMatcher {
 public:
  static constexpr size_t kMaxStopStrings = 16;

  // Throws Error(kInvalidArgument, "stop strings", ...) for more than kMaxStopStrings strings or
  // an empty one. No stop strings at all is allowed: every piece passes straight through.
  explicit StopMatcher(std::vector<std::string> stop_strings);

  // Feeds the next piece of decoded text. Once stopped, every later push returns {"", true} and
  // ignores its text.
  StopResult push(std::string_view piece);
  // The generation ended without a stop string: returns the held-back text (empty once stopped)
  // and forgets partial matches, so a later push starts a fresh text.
  std::string flush();

  bool stopped() const { return stopped_; }
  const std::vector<std::string>& stop_strings() const { return stops_; }

 private:
  std::vector<std::string> stops_;
  // failure_[s][j]: the length of the longest proper prefix of stops_[s][0, j] that is also its
  // suffix (the KMP failure function).
  std::vector<std::vector<uint32_t>> failure_;
  // matched_[s]: the length of the longest suffix of the text so far that is a prefix of stops_[s].
  std::vector<uint32_t> matched_;
  std::string held_;  // text not emitted yet: exactly the longest matched_ tail
  bool stopped_ = false;
};

}  // namespace bf
