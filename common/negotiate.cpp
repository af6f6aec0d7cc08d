#include "common/negotiate.hpp"

#ifdef TUNNEL_HAVE_GSSAPI
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#elif defined(_WIN32)
#define SECURITY_WIN32
#include <windows.h>
#include <security.h>

#include <cstdio>
#include <vector>
#endif

namespace tunnel {

#ifdef TUNNEL_HAVE_GSSAPI
namespace {

gss_OID_desc kSpnego = {6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};  // 1.3.6.1.5.5.2

// GSS-API's own words for a failure: the mechanism's (Kerberos') message when there is one, which
// says what is wrong ("No Kerberos credentials available (default cache: ...)"), else the generic one.
std::string gss_text(OM_uint32 major, OM_uint32 minor) {
  std::string out;
  auto append = [&out](OM_uint32 code, int type) {
    OM_uint32 more = 0;
    do {
      OM_uint32 ignored = 0;
      gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
      if (GSS_ERROR(gss_display_status(&ignored, code, type, GSS_C_NO_OID, &more, &text))) break;
      if (text.length > 0) out += (out.empty() ? "" : "; ") + std::string(static_cast<char*>(text.value), text.length);
      gss_release_buffer(&ignored, &text);
    } while (more != 0);
  };
  if (minor != 0) append(minor, GSS_C_MECH_CODE);
  if (out.empty()) append(major, GSS_C_GSS_CODE);
  return out.empty() ? "GSS-API error " + std::to_string(major) : out;
}

// Owners of the GSS-API objects, released on every path.
struct Name {
  gss_name_t name = GSS_C_NO_NAME;
  ~Name() {
    OM_uint32 minor = 0;
    if (name != GSS_C_NO_NAME) gss_release_name(&minor, &name);
  }
};
struct Credential {
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  ~Credential() {
    OM_uint32 minor = 0;
    if (cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &cred);
  }
};
struct Context {
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  ~Context() {
    OM_uint32 minor = 0;
    if (ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
  }
};

// The realm `host` belongs to by the local Kerberos configuration, else the default realm.
std::string realm_for(const std::string& host) {
  krb5_context ctx = nullptr;
  if (krb5_init_context(&ctx) != 0) return "";
  std::string realm;
  char** realms = nullptr;
  if (krb5_get_host_realm(ctx, host.c_str(), &realms) == 0 && realms != nullptr) {
    if (realms[0] != nullptr) realm = realms[0];
    krb5_free_host_realm(ctx, realms);
  }
  if (realm.empty()) {
    char* fallback = nullptr;
    if (krb5_get_default_realm(ctx, &fallback) == 0 && fallback != nullptr) {
      realm = fallback;
      krb5_free_default_realm(ctx, fallback);
    }
  }
  krb5_free_context(ctx);
  return realm;
}

// The user's ticket as a GSS-API credential; false with GSS-API's words when there is none.
bool acquire(Credential& credential, std::string& why, OM_uint32* lifetime = nullptr) {
  OM_uint32 minor = 0;
  const OM_uint32 major = gss_acquire_cred(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE,
                                           &credential.cred, nullptr, lifetime);
  if (GSS_ERROR(major)) {
    why = gss_text(major, minor);
    return false;
  }
  return true;
}

}  // namespace

bool kerberos_supported() { return true; }

NegotiateToken negotiate_token(const std::string& host) {
  OM_uint32 minor = 0;
  const std::string service = "HTTP@" + host;
  gss_buffer_desc service_text{service.size(), const_cast<char*>(service.data())};
  Name name;
  OM_uint32 major = gss_import_name(&minor, &service_text, GSS_C_NT_HOSTBASED_SERVICE, &name.name);
  if (GSS_ERROR(major)) return {false, gss_text(major, minor)};
  Context context;
  gss_buffer_desc token = GSS_C_EMPTY_BUFFER;
  major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &context.ctx, name.name, &kSpnego, 0, 0,
                               GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, nullptr, &token, nullptr, nullptr);
  if (GSS_ERROR(major)) {
    gss_release_buffer(&minor, &token);
    return {false, gss_text(major, minor)};
  }
  NegotiateToken result{true, std::string(static_cast<char*>(token.value), token.length)};
  gss_release_buffer(&minor, &token);
  return result;
}

std::string kerberos_login_advice(const std::string& host) {
  Credential credential;
  std::string why;
  OM_uint32 lifetime = 0;
  if (!acquire(credential, why, &lifetime)) {
    const std::string realm = realm_for(host);
    return "there is no Kerberos ticket to log in with (" + why + "): run kinit" +
           (realm.empty() ? "" : " USER@" + realm) + " (or log in to the domain) and try again";
  }
  const std::string principal = kerberos_principal();
  if (lifetime == 0) return "the Kerberos ticket of " + principal + " has expired: run kinit again";
  const NegotiateToken token = negotiate_token(host);
  if (!token.ok) return "Kerberos cannot log " + principal + " in to HTTP@" + host + ": " + token.value;
  return "it refused the Kerberos ticket of " + principal + " for HTTP@" + host +
         ": check that the proxy is known to Kerberos by that name, or give --proxy-user for another login";
}

std::string kerberos_principal() {
  Credential credential;
  std::string why;
  if (!acquire(credential, why)) return "";
  OM_uint32 minor = 0;
  Name name;
  if (GSS_ERROR(gss_inquire_cred(&minor, credential.cred, &name.name, nullptr, nullptr, nullptr))) return "";
  gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
  if (GSS_ERROR(gss_display_name(&minor, name.name, &text, nullptr))) return "";
  std::string principal(static_cast<char*>(text.value), text.length);
  gss_release_buffer(&minor, &text);
  return principal;
}

#elif defined(_WIN32)  // Windows: SSPI's Negotiate package, the logged-in user's own login
namespace {

std::string sspi_text(SECURITY_STATUS status) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%08lx", static_cast<unsigned long>(status));
  switch (status) {
    case SEC_E_NO_CREDENTIALS: return std::string("SSPI: no credentials to log in with, ") + code;
    case SEC_E_TARGET_UNKNOWN: return std::string("SSPI: the proxy's name is not known to Kerberos, ") + code;
    case SEC_E_LOGON_DENIED: return std::string("SSPI: the login was denied, ") + code;
    case SEC_E_NO_AUTHENTICATING_AUTHORITY: return std::string("SSPI: no domain controller could be reached, ") + code;
    default: return std::string("SSPI error ") + code;
  }
}

struct Credential {
  CredHandle handle{};
  bool held = false;
  ~Credential() {
    if (held) FreeCredentialsHandle(&handle);
  }
};
struct Context {
  CtxtHandle handle{};
  bool held = false;
  ~Context() {
    if (held) DeleteSecurityContext(&handle);
  }
};

char kPackage[] = "Negotiate";

bool acquire(Credential& credential, std::string& why) {
  TimeStamp expiry;
  const SECURITY_STATUS status = AcquireCredentialsHandleA(nullptr, kPackage, SECPKG_CRED_OUTBOUND, nullptr, nullptr,
                                                           nullptr, nullptr, &credential.handle, &expiry);
  if (status != SEC_E_OK) {
    why = sspi_text(status);
    return false;
  }
  credential.held = true;
  return true;
}

}  // namespace

bool kerberos_supported() { return true; }

NegotiateToken negotiate_token(const std::string& host) {
  Credential credential;
  std::string why;
  if (!acquire(credential, why)) return {false, why};
  unsigned long max_token = 48 * 1024;
  if (SecPkgInfoA* info = nullptr; QuerySecurityPackageInfoA(kPackage, &info) == SEC_E_OK) {
    max_token = info->cbMaxToken;
    FreeContextBuffer(info);
  }
  std::vector<char> token(max_token);
  SecBuffer buffer{max_token, SECBUFFER_TOKEN, token.data()};
  SecBufferDesc out{SECBUFFER_VERSION, 1, &buffer};
  std::string service = "HTTP/" + host;
  Context context;
  unsigned long attributes = 0;
  TimeStamp expiry;
  const SECURITY_STATUS status = InitializeSecurityContextA(&credential.handle, nullptr, service.data(), 0, 0,
                                                            SECURITY_NATIVE_DREP, nullptr, 0, &context.handle, &out,
                                                            &attributes, &expiry);
  if (status != SEC_E_OK && status != SEC_I_CONTINUE_NEEDED) return {false, sspi_text(status)};
  context.held = true;
  return {true, std::string(token.data(), buffer.cbBuffer)};
}

std::string kerberos_principal() {
  Credential credential;
  std::string why;
  if (!acquire(credential, why)) return "";
  SecPkgCredentials_NamesA names{};
  if (QueryCredentialsAttributesA(&credential.handle, SECPKG_CRED_ATTR_NAMES, &names) != SEC_E_OK ||
      names.sUserName == nullptr) {
    return "";
  }
  std::string principal = names.sUserName;
  FreeContextBuffer(names.sUserName);
  return principal;
}

std::string kerberos_login_advice(const std::string& host) {
  const NegotiateToken token = negotiate_token(host);
  if (!token.ok) {
    return "Windows could not make a Kerberos login for HTTP/" + host + " (" + token.value +
           "): log in to Windows with a domain account the proxy accepts (klist shows its tickets) and try again";
  }
  const std::string principal = kerberos_principal();
  return "it refused the Windows login" + (principal.empty() ? "" : " of " + principal) + " for HTTP/" + host +
         ": check that the proxy is known to Kerberos by that name, or give --proxy-user for another login";
}

#else  // built without GSS-API or SSPI

bool kerberos_supported() { return false; }
NegotiateToken negotiate_token(const std::string&) { return {false, "this build has no Kerberos (GSS-API)"}; }
std::string kerberos_login_advice(const std::string&) { return "this build of tunnel-agent has no Kerberos (GSS-API)"; }
std::string kerberos_principal() { return ""; }

#endif

}  // namespace tunnel
