#include "batch_forge/server/server.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "batch_forge/core/error.h"
#include "batch_forge/core/log.h"
#include "server/http_session.h"
#include "server/server_state.h"

namespace bf::server {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

RequestLimits make_limits(Engine& engine, const ServerOptions& o) {
  RequestLimits l;
  l.context = engine.model().max_seq_len();
  l.vocab = engine.model().vocab_size();
  l.max_prompt_tokens = o.max_prompt_tokens > 0 ? o.max_prompt_tokens : l.context - 1;
  l.max_tokens = o.max_tokens_limit > 0 ? o.max_tokens_limit : l.context;
  l.kv_tokens = engine.kv_pool().n_pages() * engine.kv_pool().page_size();
  return l;
}

std::string default_model_id(const Engine& engine, const ServerOptions& o) {
  if (!o.model_name.empty()) return o.model_name;
  return std::filesystem::path(engine.file().path()).stem().string();
}

}  // namespace

ServerState::ServerState(RequestManager& manager, ServerOptions o)
    : manager(manager),
      engine(manager.engine()),
      options(std::move(o)),
      model_id(default_model_id(engine, options)),
      limits(make_limits(engine, options)),
      started(static_cast<int64_t>(std::time(nullptr))) {
  std::random_device entropy;
  seed_counter_ = (uint64_t{entropy()} << 32) | entropy();
  char nonce[9];
  std::snprintf(nonce, sizeof nonce, "%08x", entropy());
  id_nonce_ = nonce;
}

uint64_t ServerState::next_seed() { return SplitMix64(seed_counter_.fetch_add(1, std::memory_order_relaxed)).next(); }

std::string ServerState::response_id(Route route, uint64_t handle_id) const {
  return cat(route == Route::kChat ? "chatcmpl-" : "cmpl-", id_nonce_, "-", handle_id);
}

void ServerState::generation_ended() {
  if (active_generations.fetch_sub(1) == 1) {
    std::lock_guard lock(mu_);
    idle_.notify_all();
  }
}

bool ServerState::wait_generations(double seconds) {
  std::unique_lock lock(mu_);
  return idle_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return active_generations.load() == 0; });
}

bool keys_equal(std::string_view presented, std::string_view expected) {
  // Every byte of the expected key is read whatever the presented one holds; a length mismatch
  // only sets a bit.
  unsigned diff = presented.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= p ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

struct Server::Impl {
  Impl(RequestManager& manager, ServerOptions options)
      : state(manager, std::move(options)),
        ioc(state.options.io_threads),
        acceptor(net::make_strand(ioc)),
        retry(acceptor.get_executor()),
        signals(ioc, SIGINT, SIGTERM) {}

  void listen() {
    const ServerOptions& o = state.options;
    boost::system::error_code ec;
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty())
      throw Error(ErrorCode::kIo, "server", cat("cannot resolve the host '", o.host, "': ", ec.message()));
    const tcp::endpoint endpoint = *endpoints.begin();
    auto fail = [&](const char* what) {
      throw Error(ErrorCode::kIo, "server", cat("cannot ", what, " ", o.host, ":", o.port, ": ", ec.message()));
    };
    if (acceptor.open(endpoint.protocol(), ec)) fail("open a socket for");
    if (acceptor.set_option(net::socket_base::reuse_address(true), ec)) fail("set SO_REUSEADDR on");
    if (acceptor.bind(endpoint, ec)) fail("bind");
    if (acceptor.listen(net::socket_base::max_listen_connections, ec)) fail("listen on");
    bound = acceptor.local_endpoint();
  }

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](boost::system::error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors, typically: wait a little instead of spinning on the error.
        BF_LOG(kWarn, "[server] accept failed: ", ec.message());
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this](boost::system::error_code) { accept(); });
        return;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // one small SSE event per token
      start_http_session(std::move(socket), state);
      accept();
    });
  }

  void wait_signal() {
    signals.async_wait([this](boost::system::error_code ec, int signal) {
      if (ec) return;
      const int seen = request_stop();
      BF_LOG(kInfo, "[server] signal ", signal, seen > 1 ? ": cancelling what runs" : ": stopping");
      wait_signal();
    });
  }

  // Returns how many stop requests there have been.
  int request_stop() {
    std::lock_guard lock(mu);
    stop_cv.notify_all();
    return ++signals_seen;
  }

  void run();

  ServerState state;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::steady_timer retry;
  net::signal_set signals;
  tcp::endpoint bound;

  std::mutex mu;
  std::condition_variable stop_cv;
  int signals_seen = 0;  // stop requests (signals or stop()); a second one cuts the drain short
};

void Server::Impl::run() {
  accept();
  wait_signal();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(state.options.io_threads));
  for (int i = 0; i < state.options.io_threads; ++i) threads.emplace_back([this] { ioc.run(); });

  {
    std::unique_lock lock(mu);
    stop_cv.wait(lock, [&] { return signals_seen > 0; });
  }
  // Stop accepting; requests on open connections get 503 from here on.
  state.stopping.store(true);
  net::post(acceptor.get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    retry.cancel();
  });

  // Let what is queued or running finish, up to the drain time or a second signal.
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(state.options.drain_seconds));
  bool drained = false;
  for (;;) {
    const RequestManagerStats s = state.manager.stats();
    if (s.queued + s.running == 0) {
      drained = true;
      break;
    }
    std::unique_lock lock(mu);
    if (signals_seen > 1 || Clock::now() >= deadline) break;
    stop_cv.wait_for(lock, std::chrono::milliseconds(20));
  }
  if (!drained) BF_LOG(kWarn, "[server] cancelling the requests still running");
  // Cancelled ones end "cancelled" at the scheduler's next step; either way every handle has
  // ended, and its connection has been told, when this returns.
  state.manager.shutdown(/*drain=*/drained);

  // The connections write those last events; a client that does not read gets a few seconds.
  if (!state.wait_generations(5.0)) BF_LOG(kWarn, "[server] closing connections that did not take their last bytes");
  ioc.stop();
  for (std::thread& t : threads) t.join();
}

Server::Server(RequestManager& manager, ServerOptions options)
    : impl_(std::make_unique<Impl>(manager, std::move(options))) {
  if (impl_->state.options.io_threads < 1)
    throw Error(ErrorCode::kInvalidArgument, "server",
                cat("io_threads must be >= 1, got ", impl_->state.options.io_threads));
  impl_->listen();
}

Server::~Server() = default;

uint16_t Server::port() const { return impl_->bound.port(); }

std::string Server::url() const {
  const auto address = impl_->bound.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return cat("http://", host, ":", impl_->bound.port());
}

void Server::run() { impl_->run(); }

void Server::stop() { impl_->request_stop(); }

}  // namespace bf::server
