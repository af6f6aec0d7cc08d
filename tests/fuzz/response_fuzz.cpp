// libFuzzer target over the agent's response handling and sequencing: header lines as libcurl hands
// them over (HttpExchange::take_header_line), x-seq parsing, and the reordering of server payloads.
// The input is a series of answers, each: header lines, an empty line, then one byte for the body
// length. Invariants checked on every input:
//  - the x-seq parser agrees with a reference (digits only, 1 .. 2^63-1);
//  - Content-Length is -1 or exactly the decimal number the last header said;
//  - what the reorderer hands out is the accepted payloads, each once, in x-seq order from 1 with no
//    gap, and what waits behind a gap never exceeds its byte limit.
// Run by scripts/test for a bounded time (scripts/build --fuzz).
#include "common/http_exchange.hpp"
#include "common/tunnel_protocol.hpp"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

std::optional<uint64_t> reference_seq(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value == 0 || value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return value;
}

// The payload for x-seq n: its bytes say which one it is, so the output can be checked.
std::vector<char> payload(uint64_t seq, size_t size) {
  std::vector<char> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((seq * 31 + i) & 0xff);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tunnel::HttpOptions options;  // the exchange only reads it
  tunnel::HttpExchange exchange(options);
  exchange.watch_header("x-seq");
  constexpr size_t kWindow = 4096;
  tunnel::protocol::PayloadReorderer reorderer(kWindow);
  uint64_t next_out = 1;
  std::map<uint64_t, size_t> accepted;  // seq -> size, not yet handed out

  std::string_view input(reinterpret_cast<const char*>(data), size);
  while (!input.empty()) {
    // Header lines up to an empty line.
    std::optional<std::string> last_length;
    bool status_200 = false;
    for (;;) {
      const size_t end = input.find('\n');
      std::string_view line = input.substr(0, end);
      input = end == std::string_view::npos ? std::string_view() : input.substr(end + 1);
      if (line.empty() || line == "\r") break;
      exchange.take_header_line(line);
      if (line.rfind("HTTP/", 0) == 0) {
        last_length.reset();
        status_200 = line.substr(0, 12).find(" 200") != std::string_view::npos;
      }
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string name(line.substr(0, colon));
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        // as HttpExchange trims: spaces and tabs, and line ends at the back
        while (!name.empty() && std::string_view(" \t\r\n").find(name.back()) != std::string_view::npos) {
          name.pop_back();
        }
        while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.erase(0, 1);
        if (name == "content-length") {
          std::string value(line.substr(colon + 1));
          while (!value.empty() && std::string_view(" \t\r\n").find(value.back()) != std::string_view::npos) {
            value.pop_back();
          }
          while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
          last_length = value;
        }
      }
      if (input.empty()) break;
    }
    // Content-Length as the agent reads it.
    const curl_off_t declared = exchange.content_length();
    if (last_length) {
      const std::string& v = *last_length;
      const bool digits = !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos;
      check(declared == (digits ? std::stoll(v) : -1), "Content-Length is the header's number, or -1 if malformed");
    }
    const size_t body_size = input.empty() ? 0 : static_cast<uint8_t>(input.front()) * 8u;
    if (!input.empty()) input.remove_prefix(1);

    if (!exchange.has_header_value()) continue;
    const std::string& text = exchange.header_value();
    const auto seq = tunnel::protocol::parse_seq(text);
    check(seq == reference_seq(text), "parse_seq agrees with the reference");
    if (!status_200 || !seq) continue;
    const uint64_t expected = reorderer.next_expected();
    const auto result = reorderer.push(*seq, payload(*seq, body_size));
    using R = tunnel::protocol::PayloadReorderer::Result;
    if (*seq < expected) {
      check(result == (*seq == 1 ? R::went_back : R::duplicate), "an old x-seq is refused");
    } else if (accepted.count(*seq) != 0) {
      check(result == R::duplicate, "a repeated x-seq is refused");
    }
    if (result == R::accepted) accepted[*seq] = body_size;
    check(reorderer.waiting_bytes() <= kWindow + body_size, "bytes waiting stay within the window");
    while (auto ready = reorderer.pop_ready()) {
      auto it = accepted.find(next_out);
      check(it != accepted.end(), "only accepted payloads come out");
      check(*ready == payload(next_out, it->second), "each payload comes out whole, in x-seq order");
      accepted.erase(it);
      ++next_out;
    }
    check(reorderer.next_expected() == next_out, "next expected is the one after the last handed out");
    check(reorderer.has_gap() == (!accepted.empty()), "a gap exactly when accepted payloads wait");
  }
  return 0;
}
