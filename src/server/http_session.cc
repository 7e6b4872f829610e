#include "server/http_session.h"

#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "batch_forge/core/log.h"
#include "server/api_error.h"
#include "server/openai_api.h"

namespace bf::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// A client has this long to send a request's header (also the keep-alive idle limit) and again
// for its body, and each write to it has this long to complete.
constexpr auto kReadTimeout = 60s;
constexpr auto kWriteTimeout = 60s;
// After answering before the body was read (413) the connection reads and drops what the client
// still sends, for at most this long and this many bytes: closing with unread data would reset
// the connection, and the client would see the reset instead of the answer.
constexpr auto kLingerTimeout = 2s;
constexpr size_t kLingerBytes = size_t{64} << 20;
constexpr uint32_t kHeaderLimit = 16 * 1024;
// Bytes taken per read while watching a generating connection for the client going away.
constexpr size_t kWatchBytes = 4096;
constexpr size_t kLingerReadBytes = size_t{64} << 10;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string to_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, ServerState& state)
      : strand_(socket.get_executor()), stream_(std::move(socket)), state_(state) {
    state_.connections.fetch_add(1);
  }

  // The last reference can drop on the scheduler thread (see notified()); nothing here blocks.
  ~HttpSession() {
    if (handle_) handle_->cancel();
    if (generating_) state_.generation_ended();
    state_.connections.fetch_sub(1);
  }

  void start() {
    net::dispatch(strand_, [self = shared_from_this()] { self->read_request(); });
  }

  // Scheduler thread, from the RequestHandle: new output or the end. Only posts (at most one
  // wake-up in flight: output that arrives meanwhile is taken by the same poll).
  void notified() {
    if (posted_.exchange(true)) return;
    net::post(strand_, [self = shared_from_this()] {
      self->posted_.store(false);
      self->on_progress();
    });
  }

 private:
  using Request = http::request<http::string_body>;

  // ---- Reading a request

  void read_request() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(static_cast<uint64_t>(state_.options.max_body_bytes));
    response_done_ = false;
    allow_.clear();
    stream_.expires_after(kReadTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      // The client waits for this before it sends the body (curl does for bodies over 1 MiB).
      stream_.expires_after(kWriteTimeout);
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(kReadTimeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->on_read_error(ec);
      self->route();
    });
  }

  void on_read_error(beast::error_code ec) {
    // The client closed or went quiet: nothing to answer.
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted)
      return close();
    keep_alive_ = false;
    if (ec == http::error::body_limit) {
      // Beast checks Content-Length against the limit before the header counts as complete, so
      // the field is read from the header as parsed so far.
      const std::string_view length = parser_->get()[http::field::content_length];
      reply_error(ApiError(413,
                           !length.empty()
                               ? cat("the request body has ", length, " bytes but this server takes at most ",
                                     state_.options.max_body_bytes, " (--max-body)")
                               : cat("the request body is larger than this server's limit of ",
                                     state_.options.max_body_bytes, " bytes (--max-body)"),
                           {}, "request_too_large"));
    } else if (ec == http::error::header_limit) {
      reply_error(
          ApiError(431, cat("the request header is larger than ", kHeaderLimit, " bytes"), {}, "header_too_large"));
    } else {
      reply_error(ApiError(400, cat("malformed HTTP request: ", ec.message()), {}, "bad_request"));
    }
  }

  // ---- Routes

  void route() {
    const Request& req = parser_->get();
    keep_alive_ = req.keep_alive() && !state_.stopping.load();
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    try {
      if (target == "/health") {
        require(req, http::verb::get);
        if (state_.stopping.load()) return reply(http::status::service_unavailable, R"({"status":"shutting down"})");
        return reply(http::status::ok, R"({"status":"ok"})");
      }
      authorize(req);
      if (target == "/v1/completions") {
        require(req, http::verb::post);
        return generate(Route::kCompletions);
      }
      if (target == "/v1/chat/completions") {
        require(req, http::verb::post);
        return generate(Route::kChat);
      }
      if (target == "/v1/models") {
        require(req, http::verb::get);
        return reply(http::status::ok, to_text({{"object", "list"}, {"data", nlohmann::json::array({model_card()})}}));
      }
      if (target.starts_with("/v1/models/")) {
        require(req, http::verb::get);
        const std::string_view id = target.substr(std::string_view("/v1/models/").size());
        if (id != state_.model_id) throw model_not_found(id);
        return reply(http::status::ok, to_text(model_card()));
      }
      if (target == "/metrics") {
        require(req, http::verb::get);
        return reply(http::status::ok,
                     render_metrics(state_.manager.stats(), state_.responses, state_.connections.load()),
                     "text/plain; version=0.0.4; charset=utf-8");
      }
      throw ApiError(404, cat("no route ", req.method_string(), " ", target), {}, "not_found");
    } catch (const ApiError& e) {
      reply_error(e);
    } catch (const Error& e) {
      reply_error(api_error_from(e));
    } catch (const std::exception& e) {
      reply_error(ApiError(500, cat("unexpected error: ", e.what()), {}, "internal_error"));
    }
  }

  void require(const Request& req, http::verb method) {
    if (req.method() == method) return;
    allow_ = std::string(http::to_string(method));
    throw ApiError(405, cat("method ", req.method_string(), " is not allowed on ", req.target(), "; use ", allow_), {},
                   "method_not_allowed");
  }

  void authorize(const Request& req) {
    if (state_.options.api_key.empty()) return;
    const std::string_view header = req[http::field::authorization];
    constexpr std::string_view kScheme = "Bearer ";
    if (header.size() > kScheme.size() && beast::iequals(header.substr(0, kScheme.size()), kScheme) &&
        keys_equal(header.substr(kScheme.size()), state_.options.api_key))
      return;
    throw ApiError(401,
                   header.empty() ? "no API key: send 'Authorization: Bearer KEY'"
                                  : "the API key in the Authorization header is not valid",
                   {}, "invalid_api_key");
  }

  ApiError model_not_found(std::string_view name) const {
    return ApiError(404, cat("the model '", name, "' does not exist; this server serves '", state_.model_id, "'"),
                    "model", "model_not_found");
  }

  nlohmann::json model_card() const {
    return {{"id", state_.model_id},
            {"object", "model"},
            {"created", state_.started},
            {"owned_by", "batch_forge"},
            {"max_model_len", state_.limits.context}};
  }

  // ---- Generation

  void generate(Route route) {
    if (state_.stopping.load()) throw ApiError(503, "the server is shutting down", {}, "unavailable");
    const ApiRequest api = parse_api_request(route, parser_->get().body());
    if (!api.model.empty() && api.model != state_.model_id) throw model_not_found(api.model);
    GenerationRequest request = to_generation_request(api, state_.engine, state_.limits, state_.next_seed());

    info_ = ResponseInfo{};
    info_.route = route;
    info_.created = static_cast<int64_t>(std::time(nullptr));
    info_.model = state_.model_id;
    info_.tokenizer = state_.engine.has_tokenizer() ? &state_.engine.tokenizer() : nullptr;
    info_.logprobs = api.logprobs;
    info_.prompt_tokens = static_cast<int64_t>(request.prompt.size());
    info_.token_ids = api.return_token_ids;
    if (api.return_token_ids) info_.prompt_ids = request.prompt;
    try {
      // The callback holds the connection weakly: a connection that closed is not kept alive by
      // its request, and the scheduler's notifications for it are dropped.
      handle_ = state_.manager.submit(std::move(request), [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->notified();
      });
    } catch (const Error& e) {
      throw api_error_from(e);
    }
    info_.id = state_.response_id(route, handle_->id());
    generating_ = true;
    state_.generation_started();
    ended_ = last_chunk_written_ = false;

    // From here a read that ends means the client went away (or sent its next request early).
    stream_.expires_never();
    watch_client();
    if (api.stream) {
      streaming_ = true;
      encoder_.emplace(info_, api.include_usage);
      out_ = encoder_->start();
      write_stream_header();
    } else {
      streaming_ = false;
    }
  }

  // Strand: takes what the handle produced and writes it when no write is in flight.
  void on_progress() {
    if (closed_) return;
    if (handle_ && !ended_) take_output();
    if (streaming_ && !writing_ && header_written_) flush_stream();
  }

  void take_output() {
    if (!streaming_) {
      if (!handle_->finished()) return;
      ended_ = true;
      auto handle = std::move(handle_);
      try {
        const GenerationResult result = handle->result();
        reply(http::status::ok, response_body(info_, result));
      } catch (const Error& e) {
        reply_error(ApiError(500, e.what(), {}, "generation_failed"));
      }
      return;
    }
    StreamChunk chunk;
    for (;;) {
      chunk = StreamChunk{};
      const RequestHandle::Poll p = handle_->poll(chunk);
      if (p == RequestHandle::Poll::kNothing) return;
      if (p == RequestHandle::Poll::kChunk) {
        out_ += encoder_->chunk(chunk);
        continue;
      }
      ended_ = true;
      auto handle = std::move(handle_);
      try {
        out_ += encoder_->finish(handle->result());
      } catch (const Error& e) {
        // The status line is out already: the failure goes in the stream (vLLM does the same).
        out_ += StreamEncoder::error(ApiError(500, e.what(), {}, "generation_failed"));
      }
      return;
    }
  }

  void write_stream_header() {
    stream_header_ = {};
    stream_header_.version(parser_->get().version());
    stream_header_.result(http::status::ok);
    stream_header_.set(http::field::server, "batch_forge");
    stream_header_.set(http::field::content_type, "text/event-stream");
    stream_header_.set(http::field::cache_control, "no-cache");
    stream_header_.keep_alive(keep_alive_);
    stream_header_.chunked(true);
    serializer_.emplace(stream_header_);
    state_.responses.add(200);
    writing_ = true;
    stream_.expires_after(kWriteTimeout);
    http::async_write_header(stream_, *serializer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->abandon();
      self->header_written_ = true;
      self->on_progress();
    });
  }

  void flush_stream() {
    if (!out_.empty()) {
      writing_buffer_ = std::move(out_);
      out_.clear();
      write_stream(http::make_chunk(net::buffer(writing_buffer_)));
    } else if (ended_ && !last_chunk_written_) {
      last_chunk_written_ = true;
      write_stream(http::make_chunk_last());
    }
  }

  template <typename Buffers>
  void write_stream(const Buffers& buffers) {
    writing_ = true;
    stream_.expires_after(kWriteTimeout);
    net::async_write(stream_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      // A failed write means the client is gone: cancel so its pages go back to the pool.
      if (ec) return self->abandon();
      if (self->last_chunk_written_) return self->end_response();
      self->on_progress();
    });
  }

  // Reads while a request runs, to see the client close its end (EOF) at once rather than at the
  // next write (or, without streaming, never).
  void watch_client() {
    watching_ = true;
    stream_.async_read_some(buffer_.prepare(kWatchBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_watch(ec, n); });
  }

  void on_watch(beast::error_code ec, size_t n) {
    watching_ = false;
    // Bytes here belong to the client's next request (pipelining); the parser takes them from
    // the buffer then. The watch stops: one request at a time.
    if (!ec) buffer_.commit(n);
    if (!response_done_) {
      if (ec) abandon();
      return;
    }
    if (ec && ec != net::error::operation_aborted) return close();
    next_request();
  }

  // ---- Answers

  void reply(http::status status, std::string body, const char* content_type = "application/json") {
    response_ = {};
    response_.version(parser_ ? parser_->get().version() : 11);
    response_.result(status);
    response_.set(http::field::server, "batch_forge");
    response_.set(http::field::content_type, content_type);
    if (status == http::status::unauthorized) response_.set(http::field::www_authenticate, "Bearer");
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, allow_);
    response_.keep_alive(keep_alive_);
    response_.body() = std::move(body);
    response_.prepare_payload();
    state_.responses.add(static_cast<unsigned>(status));
    stream_.expires_after(kWriteTimeout);
    writing_ = true;
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->abandon();
      self->end_response();
    });
  }

  void reply_error(const ApiError& e) {
    if (e.status >= 500) BF_LOG(kWarn, "[server] answering ", e.status, ": ", e.message);
    reply(static_cast<http::status>(e.status), error_body(e));
  }

  // ---- After a response

  void end_response() {
    response_done_ = true;
    if (generating_) {
      generating_ = false;
      state_.generation_ended();
    }
    serializer_.reset();
    encoder_.reset();
    streaming_ = header_written_ = false;
    // The watch read must end before the next request is read; on_watch goes on from there.
    if (watching_) {
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
      return;
    }
    next_request();
  }

  void next_request() {
    if (!keep_alive_ || state_.stopping.load()) return linger_and_close();
    read_request();
  }

  // The client went away while its request ran.
  void abandon() {
    if (handle_) {
      handle_->cancel();
      handle_.reset();
    }
    close();
  }

  void close() {
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  void linger_and_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    lingered_ = 0;
    stream_.expires_after(kLingerTimeout);
    linger();
  }

  void linger() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(kLingerReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerBytes) return self->close();
                              self->buffer_.commit(n);
                              self->linger();
                            });
  }

  const net::any_io_executor strand_;  // the socket's: a strand of the server's io_context
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  ServerState& state_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  bool keep_alive_ = false;
  std::string allow_;  // the Allow header of a 405
  bool writing_ = false;
  bool watching_ = false;
  bool response_done_ = false;
  bool closed_ = false;
  size_t lingered_ = 0;

  // The request being generated.
  std::shared_ptr<RequestHandle> handle_;  // null once its end was taken (or it was cancelled)
  std::atomic<bool> posted_{false};
  bool generating_ = false;  // counted in ServerState::active_generations
  ResponseInfo info_;
  bool ended_ = false;  // the handle's end was taken: the last events are in out_
  bool streaming_ = false;
  std::optional<StreamEncoder> encoder_;
  http::response<http::empty_body> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  bool header_written_ = false;
  bool last_chunk_written_ = false;
  std::string out_;             // events waiting for the write in flight to finish
  std::string writing_buffer_;  // events being written
};

}  // namespace

void start_http_session(tcp::socket socket, ServerState& state) {
  std::make_shared<HttpSession>(std::move(socket), state)->start();
}

}  // namespace bf::server
