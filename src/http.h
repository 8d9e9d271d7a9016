// http.h: the HTTP/1.x request-head parser of `pocketlm serve` (server.c), kept apart from the
// sockets so that it can be fuzzed (tests/fuzz_http.c): request line, the few headers the server
// uses, percent-decoding and checking of the path, byte ranges, MIME types by file extension.
// Nothing here does I/O, allocates, or prints. Reference: RFC 9110 (semantics), RFC 9112 (syntax).
#ifndef PLM_HTTP_H
#define PLM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define PLM_HTTP_MAX_PATH 1024 // longest decoded path; longer targets are refused with 414

typedef struct {
    char method[16];              // "GET", "HEAD", "POST", ... (as sent; tokens only)
    char path[PLM_HTTP_MAX_PATH]; // percent-decoded path without the query, starts with '/'
    int version_minor;            // HTTP/1.<version_minor>: 0 or 1
    int64_t content_length;       // Content-Length, or -1 when absent
    int chunked;                  // 1: Transfer-Encoding was sent (the server refuses it)
    int json;                     // 1: Content-Type is application/json (parameters allowed)
    int has_range;                // 1: a single "Range: bytes=..." was sent
    uint64_t range_first;         // first byte; for a suffix range ("bytes=-N") this is N
    uint64_t range_last;          // last byte (inclusive); UINT64_MAX when open ("bytes=N-")
    int range_suffix;             // 1: "bytes=-N" (the last N bytes)
    size_t head_len;              // bytes of the request head, through the blank line
    char host[256];               // Host, as sent ("" when absent)
    int n_host;                   // how many Host headers were sent (RFC 9112: exactly one)
    char origin[256];             // Origin, as sent ("" when absent)
    char authorization[512];      // Authorization, as sent ("" when absent)
} plm_http_request;

// plm_http_parse: parse the request head at the start of buf (len bytes). Returns 1 when the head
// is complete (r is filled, r->head_len says where the body starts), 0 when more bytes are needed,
// or minus an HTTP status for a bad request: -400 (malformed), -414 (path too long), -431 (a Host,
// Origin or Authorization value longer than its field above), -501
// (unsupported Transfer-Encoding), -505 (not HTTP/1.0 or 1.1). The caller bounds len: a head that
// is still incomplete at the caller's limit should get 431.
int plm_http_parse(plm_http_request *r, const char *buf, size_t len);

// plm_http_path_ok: 1 when path (decoded, from plm_http_parse) names a file under a root without
// escaping it: no "." or ".." segments, no empty segments, no backslash, no control bytes; and no
// segment starts with '.' (dotfiles are not served).
int plm_http_path_ok(const char *path);

// plm_http_range: resolve r's Range against a resource of size bytes. Returns 0 for the whole
// resource (no range, or one that covers everything), 1 for a partial one in [*first, *last], or
// -1 when the range cannot be satisfied (416).
int plm_http_range(const plm_http_request *r, uint64_t size, uint64_t *first, uint64_t *last);

// plm_http_mime: the Content-Type for a file name by its extension (application/octet-stream when
// unknown); plm_http_reason: the reason phrase of a status code ("OK", "Not Found", ...).
const char *plm_http_mime(const char *path);
const char *plm_http_reason(int status);

#endif
