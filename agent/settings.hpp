// From the command line's Config to what one forward's sessions (or a check) use.
#pragma once

#include "agent/config.hpp"
#include "agent/tunnel_session.hpp"

namespace tunnel {

SessionSettings session_settings(const Config& config, const Forward& forward);

}  // namespace tunnel
