// The address of the person behind a request. X-Forwarded-For is honoured only for hops that are
// configured trusted proxies (http.trusted_proxies), so a client cannot forge the IP that ends up
// in consent evidence.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omnigate {

// The share of a per-client limit an address belongs to: an IPv4 address itself, an IPv6 address
// by its /64 (one subscriber's prefix: a client rotating within it stays one client). Text that
// is not an address is its own key.
std::string client_key(std::string_view ip);

// The address and port of a socket address from accept/getpeername/getsockname, as text
// ("" and 0 for a family other than IPv4 and IPv6). Both servers use it for the peer.
std::string socket_address_ip(const sockaddr_storage& addr);
int socket_address_port(const sockaddr_storage& addr);

class TrustedProxies {
 public:
  // Parses CIDRs ("10.0.0.0/8", "127.0.0.1", "::1/128"); returns the first invalid one, if any.
  static std::optional<std::string> parse(const std::vector<std::string>& cidrs,
                                          TrustedProxies& out);
  bool trusts(std::string_view ip) const;
  // Walks X-Forwarded-For from the right while the hop is trusted; the first untrusted address
  // is the client. Without trusted proxies this is the socket's peer address.
  std::string client_ip(std::string_view remote_addr, std::string_view x_forwarded_for) const;

 private:
  struct Network {
    std::array<uint8_t, 16> address{};
    int prefix = 0;  // in bits, over the 16-byte (v4-mapped) form
  };
  std::vector<Network> networks_;
};

}  // namespace omnigate
