#include "common/tls_issuer.hpp"

#ifdef TUNNEL_HAVE_OPENSSL
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#endif

namespace tunnel {

#ifdef TUNNEL_HAVE_OPENSSL
namespace {

std::string& untrusted() {
  static std::string name;
  return name;
}

std::string one_line(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  // RFC 2253 order reversed, with spaces: "O = Example Corp, CN = ..." as openssl x509 prints it.
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* text = nullptr;
  const long size = BIO_get_mem_data(bio, &text);
  std::string out(text, size > 0 ? static_cast<size_t>(size) : 0);
  BIO_free(bio);
  return out;
}

int on_verify(int ok, X509_STORE_CTX* store) {
  if (ok == 0 && untrusted().empty()) {
    const X509* cert = X509_STORE_CTX_get_current_cert(store);
    if (cert != nullptr) {
      // A self-signed CA sent along is itself the one not trusted; otherwise its issuer is.
      const X509_NAME* subject = X509_get_subject_name(cert);
      const X509_NAME* issuer = X509_get_issuer_name(cert);
      untrusted() = one_line(X509_NAME_cmp(subject, issuer) == 0 ? subject : issuer);
    }
  }
  return ok;  // OpenSSL's verdict, unchanged: libcurl still fails the handshake
}

CURLcode on_ssl_context(CURL*, void* ssl_ctx, void*) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  untrusted().clear();
  SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), &on_verify);
  return CURLE_OK;
}

}  // namespace

void watch_untrusted_issuer(CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, &on_ssl_context);
}

std::string last_untrusted_issuer() { return untrusted(); }

bool trusted_by_system_store(const std::vector<std::string>& pem_chain) {
  if (pem_chain.empty()) return false;
  std::vector<X509*> certs;
  for (const auto& pem : pem_chain) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = bio != nullptr ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    if (cert == nullptr) break;
    certs.push_back(cert);
  }
  bool trusted = false;
  X509_STORE* store = X509_STORE_new();
  STACK_OF(X509)* untrusted_chain = sk_X509_new_null();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  if (certs.size() == pem_chain.size() && store != nullptr && untrusted_chain != nullptr && ctx != nullptr &&
      X509_STORE_set_default_paths(store) == 1) {
    for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(untrusted_chain, certs[i]);
    if (X509_STORE_CTX_init(ctx, store, certs.front(), untrusted_chain) == 1) trusted = X509_verify_cert(ctx) == 1;
  }
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted_chain);  // the certificates themselves are freed below
  X509_STORE_free(store);
  for (X509* cert : certs) X509_free(cert);
  return trusted;
}

#else
// A libcurl without OpenSSL (Schannel on Windows) has no context to watch: the agent's TLS error
// line then names no issuer, and check cannot ask the system store a second time.
void watch_untrusted_issuer(CURL*) {}
std::string last_untrusted_issuer() { return {}; }
bool trusted_by_system_store(const std::vector<std::string>&) { return false; }
#endif

}  // namespace tunnel
