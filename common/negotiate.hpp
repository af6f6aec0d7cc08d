// Kerberos logins to a proxy (HTTP Negotiate, SPNEGO) from the user's own ticket, through GSS-API:
// what `kinit` (or a domain login) left in the credential cache; on Windows through SSPI's
// Negotiate package, as the logged-in user. No password is read or kept.
//  - Hop 1 of every path is libcurl's, which does Negotiate itself; the agent's own CONNECTs to
//    hops 2..N of a chain take their token from negotiate_token().
//  - kerberos_login_advice() turns a failed login into words: no ticket (run kinit, and the realm
//    the proxy's host belongs to), an expired one, or what the KDC said about the proxy's name.
#pragma once

#include <string>

namespace tunnel {

struct NegotiateToken {
  bool ok = false;
  std::string value;  // the base64 token for "Proxy-Authorization: Negotiate ...", or why there is none
};

// A first SPNEGO token for the service HTTP@`host` (the proxy's host name, as the URL gives it).
NegotiateToken negotiate_token(const std::string& host);

// Why a Kerberos login to HTTP@`host` failed, as the end of a sentence: no ticket (run kinit, with
// the realm the host belongs to), an expired one, what the KDC said of the proxy's name, or, when a
// token could be made, that the proxy refused the ticket of the user named.
std::string kerberos_login_advice(const std::string& host);

// The principal the user's ticket is for ("alice@EXAMPLE.COM"), or "" without one.
std::string kerberos_principal();

// True when this build can log in with Kerberos (GSS-API was found at build time).
bool kerberos_supported();

}  // namespace tunnel
