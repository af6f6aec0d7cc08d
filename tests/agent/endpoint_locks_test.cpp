#include "agent/endpoint_locks.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace tunnel;

TEST_CASE("one endpoint, however it is written, is one lock") {
  CHECK(EndpointLocks::key("http://App.Example:80/x") == EndpointLocks::key("http://app.example/x"));
  CHECK(EndpointLocks::key("https://a.example/x") == "https://a.example:443/x");
  CHECK(EndpointLocks::key("http://a.example/x") != EndpointLocks::key("http://a.example/y"));
  CHECK(EndpointLocks::key("http://a.example/x") != EndpointLocks::key("https://a.example/x"));
}

TEST_CASE("forwards to one endpoint take turns, first come first served") {
  EndpointLocks locks;
  int a = 0, b = 0, c = 0;
  std::vector<int> turns;
  CHECK(locks.acquire("e", &a));
  CHECK(locks.acquire("e", &a));  // already its own
  CHECK_FALSE(locks.acquire("e", &b));
  locks.wait("e", &b, [&] { turns.push_back(2); });
  locks.wait("e", &b, [&] { turns.push_back(99); });  // once in line
  locks.wait("e", &c, [&] { turns.push_back(3); });
  CHECK(locks.acquire("other", &b));  // another endpoint is another lock
  locks.release("other", &b);
  CHECK(locks.holder("e") == &a);
  locks.release("e", &b);  // not the holder: nothing happens
  CHECK(locks.holder("e") == &a);
  locks.release("e", &a);
  CHECK(turns == std::vector<int>{2});
  CHECK(locks.holder("e") == &b);
  // With others in line, a free lock is not taken out of turn.
  locks.release("e", &b);
  CHECK(turns == std::vector<int>{2, 3});
  CHECK_FALSE(locks.acquire("e", &a));
  locks.release("e", &c);
  CHECK(locks.holder("e") == nullptr);
  CHECK(locks.acquire("e", &a));
}

TEST_CASE("a forward that goes leaves every line and hands on what it held") {
  EndpointLocks locks;
  int a = 0, b = 0, c = 0;
  bool b_turn = false, c_turn = false;
  locks.acquire("e", &a);
  locks.wait("e", &c, [&] { c_turn = true; });
  locks.acquire("f", &b);
  locks.wait("f", &c, [&] {});
  locks.forget(&c);  // c leaves both lines
  locks.wait("e", &b, [&] { b_turn = true; });
  locks.label(&a, "the forward on 127.0.0.1:8000");
  CHECK(locks.label_of(&a) == "the forward on 127.0.0.1:8000");
  locks.forget(&a);
  CHECK(b_turn);
  CHECK_FALSE(c_turn);
  CHECK(locks.holder("e") == &b);
  CHECK(locks.label_of(&a) == "another forward");
}
