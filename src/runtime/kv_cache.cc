#include "batch_forge/runtime/kv_cache.h"

#include <cstring>
#include <utility>

#include "batch_forge/core/error.h"

namespace bf {

KvPool::KvPool(Backend& backend, const KvLayout& layout, int64_t page_size, int64_t memory_bytes)
    : layout_(layout), page_size_(page_size) {
  if (page_size <= 0) throw Error(ErrorCode::kInvalidArgument, "kv", cat("page size must be > 0, got ", page_size));
  const int64_t per_page = page_bytes();
  n_pages_ = per_page > 0 ? memory_bytes / per_page : 0;
  if (n_pages_ <= 0 || n_pages_ > INT32_MAX)
    throw Error(ErrorCode::kInvalidArgument, "kv",
                cat("KV memory of ", memory_bytes, " bytes holds ", n_pages_, " pages of ", per_page, " bytes (",
                    page_size, " tokens × ", layout.bytes_per_token(), " bytes); give at least one page"));
  const auto half = static_cast<size_t>(n_pages_ * per_page / 2);  // K and V each
  k_ = backend.allocate(half);
  v_ = backend.allocate(half);
  // First touch now, not in the middle of a request: the pool is pre-allocated in full.
  std::memset(k_->data(), 0, half);
  std::memset(v_->data(), 0, half);
  const Shape shape{layout.n_layers, n_pages_, page_size, layout.n_kv_heads, layout.head_dim};
  view_.k = TensorView::contiguous({k_->data(), half}, DType::kF32, shape);
  view_.v = TensorView::contiguous({v_->data(), half}, DType::kF32, shape);
  view_.page_size = page_size;
  free_.reserve(static_cast<size_t>(n_pages_));
  for (int64_t p = n_pages_ - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
  refs_.assign(static_cast<size_t>(n_pages_), 0);
}

int32_t KvPool::take() {
  if (free_.empty()) return -1;
  const int32_t p = free_.back();
  free_.pop_back();
  refs_[static_cast<size_t>(p)] = 1;
  return p;
}

void KvPool::retain(int32_t page) {
  BF_CHECK(page >= 0 && page < n_pages_ && refs_[static_cast<size_t>(page)] > 0, "retain of free KV page ", page);
  ++refs_[static_cast<size_t>(page)];
}

void KvPool::release(int32_t page) {
  BF_CHECK(page >= 0 && page < n_pages_ && refs_[static_cast<size_t>(page)] > 0, "release of free KV page ", page);
  if (--refs_[static_cast<size_t>(page)] == 0) free_.push_back(page);
}

void KvPool::copy_page(int32_t from, int32_t to, int64_t tokens) {
  const int64_t row = layout_.n_kv_heads * layout_.head_dim;  // floats per token per layer
  const int64_t layer = n_pages_ * page_size_ * row;
  const auto bytes = static_cast<size_t>(tokens * row) * sizeof(float);
  for (TensorView* t : {&view_.k, &view_.v}) {
    auto* base = reinterpret_cast<float*>(t->data);
    for (int64_t l = 0; l < layout_.n_layers; ++l)
      std::memcpy(base + l * layer + to * page_size_ * row, base + l * layer + from * page_size_ * row, bytes);
  }
}

SeqState::SeqState(SeqState&& other) noexcept
    : pool_(other.pool_), pages_(std::move(other.pages_)), n_tokens_(std::exchange(other.n_tokens_, 0)) {
  other.pages_.clear();
}

SeqState& SeqState::operator=(SeqState&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = other.pool_;
    pages_ = std::move(other.pages_);
    other.pages_.clear();
    n_tokens_ = std::exchange(other.n_tokens_, 0);
  }
  return *this;
}

int64_t SeqState::pages_needed(int64_t n_more) const {
  const int64_t ps = pool_->page_size();
  const int64_t want = (n_tokens_ + n_more + ps - 1) / ps;
  return std::max<int64_t>(0, want - static_cast<int64_t>(pages_.size()));
}

bool SeqState::try_reserve(int64_t n_more) {
  const int64_t need = pages_needed(n_more);
  if (need > pool_->free_pages()) return false;
  for (int64_t i = 0; i < need; ++i) pages_.push_back(pool_->take());
  return true;
}

void SeqState::reserve(int64_t n_more) {
  if (!try_reserve(n_more))
    throw Error(ErrorCode::kResourceExhausted, "kv",
                cat("KV cache full: ", n_more, " more tokens need ", pages_needed(n_more), " pages, ",
                    pool_->free_pages(), " of ", pool_->n_pages(), " are free (raise --kv-memory)"));
}

void SeqState::commit(int64_t n) {
  BF_CHECK(n >= 0 && (n_tokens_ + n) <= static_cast<int64_t>(pages_.size()) * pool_->page_size(), "commit of ", n,
           " tokens beyond the reserved pages");
  n_tokens_ += n;
}

void SeqState::truncate(int64_t n) {
  if (n >= n_tokens_) return;
  n_tokens_ = std::max<int64_t>(n, 0);
  const int64_t keep = (n_tokens_ + pool_->page_size() - 1) / pool_->page_size();
  while (static_cast<int64_t>(pages_.size()) > keep) {
    pool_->release(pages_.back());
    pages_.pop_back();
  }
  // A kept last page shared with another sequence would be overwritten from n on: take a copy.
  if (!pages_.empty() && n_tokens_ % pool_->page_size() != 0 && pool_->references(pages_.back()) > 1) {
    const int32_t copy = pool_->take();
    if (copy < 0)
      throw Error(ErrorCode::kResourceExhausted, "kv", "KV cache full: no free page to unshare a truncated page");
    pool_->copy_page(pages_.back(), copy, n_tokens_ % pool_->page_size());
    pool_->release(pages_.back());
    pages_.back() = copy;
  }
}

SeqState SeqState::fork() const {
  SeqState out(*pool_);
  const int64_t ps = pool_->page_size();
  const int64_t full = n_tokens_ / ps, partial = n_tokens_ % ps;
  int32_t copy = -1;
  if (partial) {
    copy = pool_->take();
    if (copy < 0) throw Error(ErrorCode::kResourceExhausted, "kv", "KV cache full: no free page to fork a sequence");
    pool_->copy_page(pages_[static_cast<size_t>(full)], copy, partial);
  }
  for (int64_t i = 0; i < full; ++i) {
    pool_->retain(pages_[static_cast<size_t>(i)]);
    out.pages_.push_back(pages_[static_cast<size_t>(i)]);
  }
  if (partial) out.pages_.push_back(copy);
  out.n_tokens_ = n_tokens_;
  return out;
}

SeqState SeqState::share_prefix(int64_t n) const {
  const int64_t ps = pool_->page_size();
  BF_CHECK(n >= 0 && n % ps == 0 && n <= n_tokens_, "share_prefix of ", n, " tokens from a sequence of ", n_tokens_,
           " (pages of ", ps, ")");
  SeqState out(*pool_);
  for (int64_t i = 0; i < n / ps; ++i) {
    pool_->retain(pages_[static_cast<size_t>(i)]);
    out.pages_.push_back(pages_[static_cast<size_t>(i)]);
  }
  out.n_tokens_ = n;
  return out;
}

void SeqState::release() {
  for (int32_t p : pages_) pool_->release(p);
  pages_.clear();
  n_tokens_ = 0;
}

}  // namespace bf
