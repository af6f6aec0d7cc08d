// The name of the CA a TLS handshake would not trust: the certificate authority that signed what the
// endpoint (or a TLS-inspecting proxy on the way, re-signing it) presented. libcurl says only
// "self-signed certificate in certificate chain"; the user needs the name, to know whose CA to pass
// with --cacert. Installed on libcurl's OpenSSL context (CURLOPT_SSL_CTX_FUNCTION): OpenSSL's verify
// callback notes the first certificate it could not trust, and passes OpenSSL's verdict through.
#pragma once

#include <curl/curl.h>

#include <string>
#include <vector>

namespace tunnel {

// Makes `easy`'s TLS handshakes to the endpoint note the CA they cannot trust.
void watch_untrusted_issuer(CURL* easy);

// The distinguished name ("O=Example Corp, CN=Example Corp TLS Inspection CA") of the CA that the
// last failed verification could not trust, or "" when none failed since the last handshake began.
// (One thread: the agent's event loop.)
std::string last_untrusted_issuer();

// Whether the system's own CA store (OpenSSL's default paths, not --cacert) trusts the chain a
// server presented: its certificates as PEM, leaf first (libcurl's CURLINFO_CERTINFO "Cert:"
// fields). False also when the chain cannot be read.
bool trusted_by_system_store(const std::vector<std::string>& pem_chain);

}  // namespace tunnel
