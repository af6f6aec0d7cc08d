// tunnel-agent check URL: walks the path to the endpoint (name, each proxy, TLS, HTTP) and says on
// one line per step what it found, ending with a probe the way a debugger's session starts (an
// x-disconnect request: it opens the server's target connection and closes it again at once).
#pragma once

#include "agent/config.hpp"

namespace tunnel {

// Prints the steps on stdout; returns 0 only when a debugger could attach.
int run_check(const Config& config);

}  // namespace tunnel
