#ifndef TELEMETRYFLOW_CZLIB_SHIM_H
#define TELEMETRYFLOW_CZLIB_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

/* deflateInit2/inflateInit2 are macros, which Swift cannot call: gzip and gunzip in one call each. */

/* Upper bound of the gzip output for `length` input bytes. */
static inline size_t tf_gzip_bound(size_t length) { return compressBound((uLong)length) + 32; }

/* Compresses `in` into `out` (capacity `*out_length`, at least tf_gzip_bound) as one gzip member. Returns Z_OK and
   sets *out_length, or a zlib error code. */
static inline int tf_gzip(const uint8_t *in, size_t length, uint8_t *out, size_t *out_length, int level) {
    z_stream s;
    memset(&s, 0, sizeof s);
    int rc = deflateInit2(&s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) return rc;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)length;
    s.next_out = out;
    s.avail_out = (uInt)*out_length;
    rc = deflate(&s, Z_FINISH);
    *out_length = s.total_out;
    deflateEnd(&s);
    return rc == Z_STREAM_END ? Z_OK : (rc == Z_OK ? Z_BUF_ERROR : rc);
}

/* Decompresses a gzip (or zlib) stream into `out` (capacity `*out_length`). Returns Z_OK, Z_BUF_ERROR when `out`
   is too small, or another zlib error code. */
static inline int tf_gunzip(const uint8_t *in, size_t length, uint8_t *out, size_t *out_length) {
    z_stream s;
    memset(&s, 0, sizeof s);
    int rc = inflateInit2(&s, 15 + 32);
    if (rc != Z_OK) return rc;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)length;
    s.next_out = out;
    s.avail_out = (uInt)*out_length;
    rc = inflate(&s, Z_FINISH);
    *out_length = s.total_out;
    inflateEnd(&s);
    if (rc == Z_STREAM_END) return Z_OK;
    if (rc == Z_OK || (rc == Z_BUF_ERROR && s.avail_out == 0)) return Z_BUF_ERROR;
    return rc == Z_BUF_ERROR ? Z_DATA_ERROR : rc;
}
#endif
