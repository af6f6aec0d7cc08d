#include "common/download_stream.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace tunnel;
using Result = protocol::PayloadReorderer::Result;

namespace {
std::vector<char> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string drain(DownloadStream& d) {
  std::string out;
  while (auto chunk = d.pop_ready()) out.append(chunk->begin(), chunk->end());
  return out;
}
}  // namespace

TEST_CASE("payloads come out in x-seq order; a gap opens once and closes when filled") {
  DownloadStream d(1 << 20);
  CHECK_FALSE(d.any_payload());
  auto p = d.push(1, bytes("a"), 100);
  CHECK(p.result == Result::accepted);
  CHECK_FALSE(p.gap_opened);
  CHECK(drain(d) == "a");
  CHECK(d.any_payload());
  CHECK(d.last_payload_ns() == 100);
  CHECK(d.last_payload_bytes() == 1);

  p = d.push(3, bytes("ccc"), 200);
  CHECK(p.gap_opened);
  CHECK(d.has_gap());
  CHECK(d.gap_since_ns() == 200);
  CHECK(drain(d).empty());
  p = d.push(4, bytes("d"), 300);
  CHECK_FALSE(p.gap_opened);  // the same gap: its clock keeps running
  CHECK(d.gap_since_ns() == 200);
  p = d.push(2, bytes("bb"), 400);
  CHECK_FALSE(d.has_gap());
  CHECK(d.gap_since_ns() == 0);
  CHECK(drain(d) == "bbcccd");
  CHECK(d.next_expected() == 5);
}

TEST_CASE("a gap left behind by in-order payloads is seen after they are taken") {
  DownloadStream d(1 << 20);
  d.push(3, bytes("c"), 10);
  auto p = d.push(1, bytes("a"), 20);  // 1 comes out, 3 still waits for 2
  CHECK(drain(d) == "a");
  CHECK(d.has_gap());
  CHECK_FALSE(p.gap_opened);
  CHECK(d.gap_since_ns() == 10);
}

TEST_CASE("what the reorderer refuses is said, and nothing is handed out") {
  DownloadStream d(1 << 20);
  d.push(1, bytes("a"), 1);
  d.push(2, bytes("b"), 2);
  drain(d);
  CHECK(d.push(2, bytes("b"), 3).result == Result::duplicate);
  CHECK(drain(d).empty());
}

TEST_CASE("back-pressure: no polling past the window, one request held up to twice it") {
  DownloadStream d(1000);
  CHECK(d.keeps_up());
  d.writing(999);
  CHECK(d.keeps_up());
  d.writing(1);
  CHECK_FALSE(d.keeps_up());
  CHECK(d.may_keep_one_held());
  d.writing(1000);
  CHECK_FALSE(d.may_keep_one_held());
  d.written(1500);
  CHECK(d.keeps_up());
  CHECK(d.backlog() == 500);
}

TEST_CASE("back-pressure: much waiting behind a gap stops polling too") {
  DownloadStream d(1000);
  d.push(2, std::vector<char>(499, 'x'), 1);
  CHECK(d.keeps_up());
  d.push(3, std::vector<char>(1, 'y'), 2);
  CHECK_FALSE(d.keeps_up());  // half the window waits for x-seq 1
  CHECK_FALSE(d.may_keep_one_held());
  d.push(1, bytes("z"), 3);
  drain(d);
  CHECK(d.keeps_up());
}
