// One HTTP/1.1 connection: reads requests (Boost.Beast's parser), answers the routes, and streams
// generation output as the scheduler produces it. Everything it does runs on the connection's
// strand; the scheduler only posts to it.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "server/server_state.h"

namespace bf::server {

// Takes over an accepted socket whose executor is a strand of the server's io_context. The
// connection keeps itself alive until the socket closes.
void start_http_session(boost::asio::ip::tcp::socket socket, ServerState& state);

}  // namespace bf::server
