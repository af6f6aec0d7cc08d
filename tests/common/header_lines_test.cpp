#include "common/http_exchange.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

std::vector<std::string> lines_of(const curl_slist* list) {
  std::vector<std::string> out;
  for (; list != nullptr; list = list->next) out.emplace_back(list->data);
  return out;
}

}  // namespace

TEST_CASE("HeaderLines builds the list libcurl reads, in order, and reuses it") {
  tunnel::HeaderLines lines;
  CHECK(lines.list() == nullptr);

  lines.add().append("X-AUTH-TOKEN: s3cret");
  lines.add().append("x-seq: ").append("41");
  CHECK(lines_of(lines.list()) == std::vector<std::string>{"X-AUTH-TOKEN: s3cret", "x-seq: 41"});

  // The next request: fewer, shorter lines; nothing of the previous one is left over.
  const char* first_line_storage = lines.list()->data;
  lines.clear();
  lines.add().append("Expect:");
  CHECK(lines_of(lines.list()) == std::vector<std::string>{"Expect:"});
  CHECK(lines.list()->data == first_line_storage);  // the same buffer: no allocation per request
}

TEST_CASE("HeaderLines refuses more lines than it holds") {
  tunnel::HeaderLines lines;
  for (size_t i = 0; i < tunnel::HeaderLines::kMax; ++i) lines.add().append("A: b");
  CHECK_THROWS_AS(lines.add(), std::length_error);
}
