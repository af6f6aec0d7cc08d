#include "common/http_exchange.hpp"

#include <doctest/doctest.h>

using namespace tunnel;

TEST_CASE("a body's end is verified by a Content-Length or chunked framing, never by the connection's close") {
  HttpOptions options;
  HttpExchange x(options);
  x.take_header_line("HTTP/1.1 200 OK\r\n");
  x.take_header_line("x-seq: 3\r\n");
  CHECK_FALSE(x.end_verified());  // close-delimited: a cut looks like the end
  x.take_header_line("Content-Length: 1200\r\n");
  CHECK(x.end_verified());
  CHECK(x.content_length() == 1200);

  x.take_header_line("HTTP/1.1 200 OK\r\n");  // a new answer forgets the last one's framing
  CHECK_FALSE(x.end_verified());
  x.take_header_line("Transfer-Encoding: gzip, chunked\r\n");
  CHECK(x.end_verified());
  x.take_header_line("HTTP/1.1 200 OK\r\n");
  x.take_header_line("transfer-encoding: chunked, gzip\r\n");  // not framed by chunks at the end
  CHECK_FALSE(x.end_verified());
  x.take_header_line("HTTP/1.1 200 OK\r\n");
  x.take_header_line("Content-Length: 12x\r\n");  // not a length
  CHECK_FALSE(x.end_verified());
}
