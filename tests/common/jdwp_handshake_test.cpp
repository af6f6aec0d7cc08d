#include "common/jdwp_handshake.hpp"

#include <doctest/doctest.h>

#include <string>

using tunnel::JdwpHandshake;
using State = JdwpHandshake::State;

TEST_CASE("a debugger's handshake answered by a JVM, in pieces") {
  JdwpHandshake h;
  const std::string hello(JdwpHandshake::kHello);
  CHECK_FALSE(h.from_client(hello.data(), 4));
  CHECK(h.state() == State::unknown);
  CHECK(h.from_client(hello.data() + 4, 10));
  CHECK(h.state() == State::awaiting_jvm);
  CHECK(h.debugger());
  const std::string reply = hello + "\x00\x00\x00\x0b";  // the JVM's first packet may follow at once
  CHECK_FALSE(h.from_target(reply.data(), 7));
  CHECK(h.from_target(reply.data() + 7, reply.size() - 7));
  CHECK(h.state() == State::attached);
  CHECK_FALSE(h.from_client("more", 4));  // later bytes change nothing
  CHECK(h.state() == State::attached);
}

TEST_CASE("the target answers before the debugger finished (it cannot, but order must not matter)") {
  JdwpHandshake h;
  const std::string hello(JdwpHandshake::kHello);
  h.from_target(hello.data(), hello.size());
  CHECK(h.state() == State::unknown);
  h.from_client(hello.data(), hello.size());
  CHECK(h.state() == State::attached);
}

TEST_CASE("not JDWP: an ssh client, or a target that answers something else") {
  JdwpHandshake ssh;
  CHECK(ssh.from_client("SSH-2.0-OpenSSH_9.2\r\n", 21));
  CHECK(ssh.state() == State::not_jdwp);
  CHECK_FALSE(ssh.debugger());
  JdwpHandshake early;
  CHECK(early.from_client("JDWX", 4));  // wrong from the 4th byte: decided at once
  CHECK(early.state() == State::not_jdwp);

  JdwpHandshake http;
  const std::string hello(JdwpHandshake::kHello);
  http.from_client(hello.data(), hello.size());
  CHECK(http.from_target("HTTP/1.1 400 Bad Request\r\n", 26));
  CHECK(http.state() == State::wrong_answer);
}
