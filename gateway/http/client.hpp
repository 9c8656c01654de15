// The outbound HTTP side of the kit (libcurl), as far as it exists on this branch: the owners of
// curl's handles and the process-wide init. Every curl handle of a connector is owned by these,
// so no path leaks one. (The kit's full client -- JSON calls, streamed downloads -- is being
// built under the same names; this header is the subset it keeps.)
#pragma once

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <string>

namespace omnigate::http {

// curl_global_init for the whole process, exactly once (it is not thread-safe and must precede
// every easy handle).
inline void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

}  // namespace omnigate::http
