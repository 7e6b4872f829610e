#include "batch_forge/runtime/stop_strings.h"

#include <algorithm>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf {

StopMatcher::StopMatcher(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  if (stops_.size() > kMaxStopStrings)
    throw Error(ErrorCode::kInvalidArgument, "stop strings",
                cat("a request may have at most ", kMaxStopStrings, " stop strings but this one has ", stops_.size()));
  for (size_t s = 0; s < stops_.size(); ++s)
    if (stops_[s].empty())
      throw Error(ErrorCode::kInvalidArgument, "stop strings",
                  cat("stop string ", s, " is empty; each must have a byte"));

  failure_.resize(stops_.size());
  for (size_t s = 0; s < stops_.size(); ++s) {
    const std::string& p = stops_[s];
    std::vector<uint32_t>& f = failure_[s];
    f.assign(p.size(), 0);
    uint32_t k = 0;
    for (size_t j = 1; j < p.size(); ++j) {
      while (k > 0 && p[j] != p[k]) k = f[k - 1];
      if (p[j] == p[k]) ++k;
      f[j] = k;
    }
  }
  matched_.assign(stops_.size(), 0);
}

StopResult StopMatcher::push(std::string_view piece) {
  if (stopped_) return {"", true};
  for (size_t i = 0; i < piece.size(); ++i) {
    const char c = piece[i];
    size_t match_length = 0;  // of the longest stop string that ends at this byte
    for (size_t s = 0; s < stops_.size(); ++s) {
      const std::string& p = stops_[s];
      uint32_t k = matched_[s];
      while (k > 0 && p[k] != c) k = failure_[s][k - 1];
      if (p[k] == c) ++k;
      if (k == p.size()) {
        match_length = std::max(match_length, p.size());
        k = failure_[s][k - 1];  // keeps the automaton valid; unused once stopped
      }
      matched_[s] = k;
    }
    if (match_length > 0) {
      // The match lies within held_ + piece[0, i]: before this byte it was a prefix of length
      // match_length - 1 of a stop string, which held_ covers.
      std::string text = std::move(held_);
      text.append(piece.substr(0, i + 1));
      text.resize(text.size() - match_length);
      held_.clear();
      stopped_ = true;
      return {std::move(text), true};
    }
  }

  // Hold back the longest tail that may still grow into a stop string; emit the rest.
  const size_t hold = matched_.empty() ? 0 : *std::max_element(matched_.begin(), matched_.end());
  StopResult result;
  if (hold >= piece.size()) {
    // The held tail reaches back into held_ (hold <= held_.size() + piece.size(), since each byte
    // lengthens a match by at most one): emit the front of held_ only.
    const size_t from_held = held_.size() - (hold - piece.size());
    result.emit = held_.substr(0, from_held);
    held_.erase(0, from_held);
    held_.append(piece);
  } else {
    result.emit = std::move(held_);
    result.emit.append(piece.substr(0, piece.size() - hold));
    held_.assign(piece.substr(piece.size() - hold));
  }
  return result;
}

std::string StopMatcher::flush() {
  std::string rest = std::move(held_);
  held_.clear();
  std::fill(matched_.begin(), matched_.end(), 0);
  return rest;
}

}  // namespace bf
