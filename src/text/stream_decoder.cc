#include "batch_forge/text/tokenizer.h"

namespace bf {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

// Hugging Face's DecodeStream::step: decode the window; if it grew and does not end in U+FFFD (an
// unfinished character decodes to one), return what follows the text already returned and slide
// the window to start at the chunk just returned.
std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_->decode(ids_, skip_special_);
  if (text.size() <= prefix_.size() || text.ends_with(kReplacementChar)) return {};
  std::string chunk;
  if (text.starts_with(prefix_)) {
    chunk = text.substr(prefix_.size());
  } else {
    // The decoder rewrote text already returned: ByteFallback turns a whole run of byte tokens into
    // U+FFFD once the run proves not to be UTF-8. Hugging Face's DecodeStream raises here; what was
    // returned stays returned, and the ids not returned yet are decoded on their own.
    const std::span<const int32_t> fresh(ids_.data() + prefix_index_, ids_.size() - prefix_index_);
    chunk = tokenizer_->decode(fresh, skip_special_);
  }
  const size_t returned = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = tokenizer_->decode(ids_, skip_special_);
  prefix_index_ = returned;
  return chunk;
}

std::string StreamDecoder::flush() {
  std::string rest;
  if (!ids_.empty()) {
    const std::string text = tokenizer_->decode(ids_, skip_special_);
    if (text.size() > prefix_.size() && text.starts_with(prefix_)) rest = text.substr(prefix_.size());
  }
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return rest;
}

}  // namespace bf
