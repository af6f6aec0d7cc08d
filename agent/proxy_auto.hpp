// The proxy a PAC script chooses, for the forwards that ask for it (--pac, --proxy-auto): the
// script is fetched (a URL, a file, or found by WPAD), run for each forward's URL by pacparser
// (common/pac.cpp), and the first of its choices that answers is taken, as browsers do.
// Runs once at start, before the event loop: it blocks for the fetch and the probes, each bounded.
#pragma once

#include "agent/config.hpp"
#include "agent/desktop_proxy.hpp"

#include <string>
#include <vector>

namespace tunnel {

// The WPAD addresses to try, best first, for the DNS domains of resolv.conf's `search` and
// `domain` lines and of the host's own name: corp.example.com gives
// http://wpad.corp.example.com/wpad.dat, then http://wpad.example.com/wpad.dat (never a top-level
// wpad.com). Pure: the texts are given.
std::vector<std::string> wpad_urls(const std::string& resolv_conf, const std::string& hostname);

struct AutoProxyResult {
  std::string error;                  // non-empty: the agent cannot start ("" on success)
  std::vector<std::string> warnings;  // choices that did not answer, SOCKS entries skipped, ...
};

// Fills `proxy.hops` of every forward with auto_proxy set: from --pac's script; else from the
// desktop's proxy settings (agent/desktop_proxy.hpp; `env` gives XDG_CURRENT_DESKTOP and the
// rest), a proxy they name or their PAC script; else from the script WPAD finds. A hop's source
// says who chose it: the settings, or the script, its whole answer, and the choices before it that
// did not answer. DIRECT sets `bypassed`. `probe_timeout_ms` bounds each TCP probe of a PAC choice.
AutoProxyResult resolve_auto_proxies(Config& config, const EnvFunction& env, long probe_timeout_ms = 2000);

}  // namespace tunnel
