// http.c: the HTTP/1.x request-head parser (see http.h). Strict where leniency would be a risk
// (request line, header names, Content-Length, Transfer-Encoding, folded lines, the path), lenient
// where it is harmless (unknown headers are skipped; a Range we cannot use is ignored, which RFC 9110
// allows). Lines end in CRLF or a bare LF (RFC 9112 section 2.2).
#include "http.h"

#include <string.h>

// ---- character classes ----

// tchar: the characters of a token (method, header name), RFC 9110 section 5.6.2
static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hex_val(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int lower(int c) {
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

// name_is: case-insensitive comparison of n bytes at s with the NUL-terminated name
static int name_is(const char *s, size_t n, const char *name) {
    if (strlen(name) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)name[i])) return 0;
    return 1;
}

// parse_u64: the decimal digits s[0..n) (n >= 1, at most 19 digits) into *out; -1 if not that
static int parse_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 19) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

// ---- request line ----

// parse_target: percent-decode the origin-form target t[0..n) into r->path, dropping the query
static int parse_target(plm_http_request *r, const char *t, size_t n) {
    if (n == 0 || t[0] != '/') return -400; // only origin-form ("/path?query")
    size_t k = 0;
    for (size_t i = 0; i < n && t[i] != '?' && t[i] != '#'; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f) return -400;
        if (c == '%') {
            int hi = i + 2 < n ? hex_val((unsigned char)t[i + 1]) : -1;
            int lo = i + 2 < n ? hex_val((unsigned char)t[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -400; // bad escape, or NUL
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (k + 1 >= sizeof r->path) return -414;
        r->path[k++] = (char)c;
    }
    r->path[k] = 0;
    return 0;
}

// parse_request_line: "METHOD SP target SP HTTP/1.x" in line[0..n)
static int parse_request_line(plm_http_request *r, const char *line, size_t n) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i])) i++;
    if (i == 0 || i >= sizeof r->method || i >= n || line[i] != ' ') return -400;
    memcpy(r->method, line, i);
    r->method[i] = 0;
    size_t t0 = ++i;
    while (i < n && line[i] != ' ') i++;
    if (i >= n) return -400;
    int rc = parse_target(r, line + t0, i - t0);
    if (rc) return rc;
    const char *v = line + i + 1;
    size_t vn = n - i - 1;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return -505;
    r->version_minor = v[7] - '0';
    return 0;
}

// ---- headers ----

// parse_range: "bytes=first-last", "bytes=first-" or "bytes=-suffix"; anything else (several
// ranges, other units, bad numbers) leaves has_range 0 and the whole resource is sent.
static void parse_range(plm_http_request *r, const char *v, size_t n) {
    if (n < 7 || !name_is(v, 6, "bytes=")) return;
    v += 6;
    n -= 6;
    const char *dash = memchr(v, '-', n);
    if (!dash) return;
    size_t a = (size_t)(dash - v), b = n - a - 1;
    uint64_t x = 0, y = UINT64_MAX;
    if (a == 0) { // suffix: the last y bytes
        if (parse_u64(dash + 1, b, &x) || x == 0) return;
        r->range_suffix = 1;
    } else {
        if (parse_u64(v, a, &x) || (b > 0 && parse_u64(dash + 1, b, &y)) || y < x) return;
    }
    r->has_range = 1;
    r->range_first = x;
    r->range_last = y;
}

// copy_value: a header value v[0..n) into dst (cap bytes, NUL-terminated); -431 when it is too long
static int copy_value(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap) return -431;
    memcpy(dst, v, n);
    dst[n] = 0;
    return 0;
}

// parse_header: one "name: value" line; returns 0 or minus a status
static int parse_header(plm_http_request *r, const char *line, size_t n) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i])) i++;
    if (i == 0 || i >= n || line[i] != ':') return -400; // also rejects obs-fold (leading space)
    const char *name = line;
    size_t nn = i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t e = n;
    while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t')) e--;
    const char *v = line + i;
    size_t vn = e - i;
    for (size_t k = 0; k < vn; k++)
        if ((unsigned char)v[k] < 0x20 && v[k] != '\t') return -400;
    if (name_is(name, nn, "content-length")) {
        uint64_t cl;
        if (parse_u64(v, vn, &cl) || cl > (uint64_t)INT64_MAX) return -400;
        if (r->content_length >= 0 && (uint64_t)r->content_length != cl) return -400;
        r->content_length = (int64_t)cl;
    } else if (name_is(name, nn, "transfer-encoding")) {
        r->chunked = 1;
    } else if (name_is(name, nn, "content-type")) {
        static const char want[] = "application/json";
        size_t w = sizeof want - 1;
        r->json = vn >= w && name_is(v, w, want) && (vn == w || v[w] == ';' || v[w] == ' ');
    } else if (name_is(name, nn, "host")) {
        r->n_host++;
        return copy_value(r->host, sizeof r->host, v, vn);
    } else if (name_is(name, nn, "origin")) {
        return copy_value(r->origin, sizeof r->origin, v, vn);
    } else if (name_is(name, nn, "authorization")) {
        return copy_value(r->authorization, sizeof r->authorization, v, vn);
    } else if (name_is(name, nn, "range")) {
        if (r->has_range) r->has_range = -1; // several Range headers: ignore them all
        else parse_range(r, v, vn);
    }
    return 0;
}

int plm_http_parse(plm_http_request *r, const char *buf, size_t len) {
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    // the head ends at the first empty line
    size_t end = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            end = i + 3;
            break;
        }
    }
    if (end == 0) return 0;
    size_t pos = 0;
    int first = 1;
    while (pos < end) {
        const char *nl = memchr(buf + pos, '\n', end - pos);
        size_t n = (size_t)(nl - (buf + pos)), next = pos + n + 1;
        if (n > 0 && buf[pos + n - 1] == '\r') n--;
        if (memchr(buf + pos, 0, n) || memchr(buf + pos, '\r', n)) return -400;
        if (n == 0) {
            if (first) return -400; // no request line
            break;
        }
        int rc = first ? parse_request_line(r, buf + pos, n) : parse_header(r, buf + pos, n);
        if (rc) return rc;
        first = 0;
        pos = next;
    }
    if (r->has_range < 0) r->has_range = 0;
    if (r->chunked) return r->content_length >= 0 ? -400 : -501;
    r->head_len = end;
    return 1;
}

// ---- paths, ranges, types ----

int plm_http_path_ok(const char *path) {
    if (path[0] != '/') return 0;
    const char *seg = path + 1;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if (n == 0 && slash) return 0;        // "//" or a trailing "/" inside
        if (n > 0 && seg[0] == '.') return 0; // ".", "..", dotfiles
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == '\\' || seg[i] == 0x7f) return 0;
        if (!slash) return 1;
        seg = slash + 1;
    }
}

int plm_http_range(const plm_http_request *r, uint64_t size, uint64_t *first, uint64_t *last) {
    *first = 0;
    *last = size ? size - 1 : 0;
    if (!r->has_range) return 0;
    if (r->range_suffix) {
        if (size == 0) return -1;
        *first = r->range_first >= size ? 0 : size - r->range_first;
    } else {
        if (r->range_first >= size) return -1;
        *first = r->range_first;
        *last = r->range_last < size - 1 ? r->range_last : size - 1;
    }
    return (*first == 0 && *last == size - 1) ? 0 : 1;
}

const char *plm_http_mime(const char *path) {
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".wasm", "application/wasm"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
        {".gguf", "application/octet-stream"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (name_is(dot, strlen(dot), types[i][0])) return types[i][1];
    return "application/octet-stream";
}

const char *plm_http_reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
