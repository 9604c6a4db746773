#ifndef TELEMETRYFLOW_CCURL_SHIM_H
#define TELEMETRYFLOW_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt is variadic, which Swift cannot call: one typed wrapper per argument kind. */
static inline CURLcode tf_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode tf_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode tf_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode tf_curl_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode tf_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLMcode tf_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}
typedef size_t (*tf_curl_data_callback)(char *data, size_t size, size_t count, void *userdata);
static inline CURLcode tf_curl_easy_setopt_callback(CURL *handle, CURLoption option, tf_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}
/* The running libcurl's version as 0xXXYYZZ. */
static inline unsigned int tf_curl_version_num(void) { return curl_version_info(CURLVERSION_NOW)->version_num; }
/* Whether the running libcurl was built with HTTP/2 (nghttp2). */
static inline int tf_curl_has_http2(void) { return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2) != 0; }
#endif
