// server_guard.c: who may ask `pocketlm serve`, checked before any route runs: the Host header must
// name this server (the defence against DNS rebinding: a page on evil.example that resolves its
// name to 127.0.0.1 still sends "Host: evil.example"); a state-changing request from another
// origin is refused unless that origin is allow-listed; allowed origins get CORS headers and their
// preflight (Fetch standard, CORS protocol); the API key (Bearer, RFC 6750) when one is set; and
// the rule that binding a non-loopback address needs a key. Not here: the routes (server.c).
#define _POSIX_C_SOURCE 200809L
#include "server.h"

#if !defined(__EMSCRIPTEN__)
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

// same_ci: a and b equal ignoring ASCII case
static int same_ci(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        int x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a, y = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;
        if (x != y) return 0;
    }
    return *a == *b;
}

// plm_server_loopback: 1 when host (numeric) is 127.0.0.0/8 or ::1
int plm_server_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

// wildcard: 0.0.0.0 or :: (every address of the machine; clients name it as they like)
static int wildcard(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return a4.s_addr == 0;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

plm_status plm_server_check_bind(const plm_server_params *p, plm_error *err) {
    if (plm_server_loopback(p->host) || (p->api_key && p->api_key[0])) return PLM_OK;
    return plm_fail(err, PLM_ERR_ARG,
                    "serve: %s is not a loopback address: anyone who can reach it could use the "
                    "API, so set an API key (--api-key KEY) or listen on 127.0.0.1",
                    p->host);
}

// host_ok: the Host header names this server: its bound address, localhost, 127.0.0.1 or [::1],
// with the port (or without it when the port is 80). On a wildcard address any name is fine: the
// API key, required there, guards the API.
static int host_ok(const conn *c) {
    const server *s = c->srv;
    if (wildcard(s->p->host)) return 1;
    char bound[80];
    snprintf(bound, sizeof bound, strchr(s->p->host, ':') ? "[%s]" : "%s", s->p->host);
    const char *names[] = {bound, "localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[96];
        snprintf(want, sizeof want, "%s:%d", names[i], s->port);
        if (same_ci(c->req.host, want) || (s->port == 80 && same_ci(c->req.host, names[i])))
            return 1;
    }
    return 0;
}

// allowed_origin: the allow-list entry equal to origin, or NULL
static const char *allowed_origin(const server *s, const char *origin) {
    for (int32_t i = 0; i < s->p->n_allow_origins; i++)
        if (same_ci(s->p->allow_origins[i], origin)) return s->p->allow_origins[i];
    return NULL;
}

// key_ok: "Authorization: Bearer <api_key>", compared in time independent of where it differs
static int key_ok(const conn *c) {
    const char *a = c->req.authorization, *key = c->srv->p->api_key;
    char scheme[8] = {0};
    memcpy(scheme, a, strnlen(a, 7));
    if (!same_ci(scheme, "Bearer ")) return 0; // the scheme is case-insensitive, the key is not
    const char *got = a + 7;
    size_t n = strlen(key);
    if (strlen(got) != n) return 0;
    unsigned diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)got[i] ^ (unsigned char)key[i];
    return diff == 0;
}

int plm_server_guard(conn *c) {
    const plm_http_request *r = &c->req;
    const server *s = c->srv;
    if (r->n_host > 1 || (r->n_host == 0 && r->version_minor == 1))
        return plm_server_send_error(c, 400, NULL, "an HTTP/1.1 request needs one Host header"), -1;
    if (r->n_host == 1 && !host_ok(c))
        return plm_server_send_error(c, 421, NULL,
                                     "Host '%s' is not this server: use localhost:%d or "
                                     "127.0.0.1:%d",
                                     r->host, s->port, s->port),
               -1;
    int safe = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    int preflight = !strcmp(r->method, "OPTIONS");
    char self[300];
    snprintf(self, sizeof self, "http://%s", r->host);
    int foreign = r->origin[0] && !same_ci(r->origin, self);
    c->cors = foreign ? allowed_origin(s, r->origin) : NULL;
    if (foreign && !c->cors && !safe)
        return plm_server_send_error(c, 403, NULL,
                                     "origin '%s' may not use this server (serve --allow-origin "
                                     "ORIGIN allows one)",
                                     r->origin),
               -1;
    if (preflight) { // a foreign origin here is allowed (else 403 above)
        const char *cors = c->cors ? "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                                     "Access-Control-Allow-Headers: Authorization, *\r\n"
                                     "Access-Control-Max-Age: 600\r\n"
                                   : "";
        char extra[256];
        snprintf(extra, sizeof extra, "Allow: GET, HEAD, POST, OPTIONS\r\n%s", cors);
        plm_server_send_head(c, 204, "text/plain", -1, extra);
        return -1;
    }
    if (s->p->api_key && s->p->api_key[0] && !strncmp(r->path, "/v1/", 4) && !key_ok(c))
        return plm_server_send_error(c, 401, "WWW-Authenticate: Bearer\r\n",
                                     "this server needs its API key: send Authorization: Bearer "
                                     "KEY"),
               -1;
    return 0;
}

#endif // !__EMSCRIPTEN__
