// server.h: what the two files of `pocketlm serve` share (internal): the connection state, the
// growable text buffer for responses, and the sending and queueing helpers of server.c (sockets,
// connections, requests, static files, routing) that the JSON API of server_api.c answers with.
// Each file defines _POSIX_C_SOURCE before including it. A WebAssembly build (no sockets) gets none
// of it.
#ifndef PLM_SERVER_H
#define PLM_SERVER_H

#include "base.h"
#include "http.h"

#if !defined(__EMSCRIPTEN__)
#include <pthread.h>
#include <stdatomic.h>

#define HEAD_MAX 8192 // request head limit: larger gets 431

// ---- growable text buffer for JSON responses ----

typedef struct {
    char *p; // (cap) bytes, NUL-terminated when n > 0
    size_t n, cap;
    int oom; // an append failed; the buffer keeps what fit before
} sbuf;

// plm_sbuf_add, plm_sbuf_addf: append bytes / formatted text; on failure b->oom is set and b keeps
// what fit before. plm_sbuf_json_str: s (n bytes) as a quoted JSON string (plm_json_quote: invalid
// UTF-8 becomes U+FFFD).
void plm_sbuf_add(sbuf *b, const char *s, size_t n);
void plm_sbuf_addf(sbuf *b, const char *fmt, ...) PLM_PRINTF(2, 3);
void plm_sbuf_json_str(sbuf *b, const char *s, size_t n);

// ---- server and connection state ----

typedef struct {
    pthread_t thread; // joined by the accept loop once done
    int used;         // a thread was started for this slot
    int done;         // the thread has finished (join it)
    int fd;           // its socket while open, else -1 (shut down on stop)
} slot;

typedef struct {
    const plm_server_params *p;
    int listen_fd;
    atomic_int stopping;        // set once should_stop said so
    pthread_mutex_t lock;       // guards the slots and the session queue
    pthread_cond_t turn;        // signalled when the session frees up or on stop
    slot *slots;                // (max_conns)
    int gen_busy;               // 1 while a request holds the session
    int gen_waiting;            // requests waiting for the session
    atomic_uint_fast64_t n_req; // requests seen: completion ids
    pthread_mutex_t log_lock;   // one on_log call at a time
} server;

typedef struct {
    server *srv;
    int slot;                // index in srv->slots
    int fd;                  // the client's socket
    char peer[64];           // client address, for the log
    double t0;               // when the connection was accepted (plm_time)
    char head[HEAD_MAX + 1]; // the request head and the first bytes of the body
    size_t len;              // bytes in head
    plm_http_request req;    // the parsed head
    char *body;              // (body_len) the request body, NUL-terminated; or NULL
    size_t body_len;
    int status;    // the status sent, for the log (0 = none)
    uint64_t sent; // bytes sent
    int broken;    // a send failed: the client is gone
} conn;

// ---- server.c: stopping, sending, the session queue ----

// plm_server_stopping: 1 once should_stop has said so (it is polled here)
int plm_server_stopping(server *s);
// plm_server_send_all: all n bytes, or mark the connection broken; 0 or -1
int plm_server_send_all(conn *c, const void *buf, size_t n);
// plm_server_send_head: status line and headers. length < 0 means no Content-Length (the body ends
// when the connection closes: server-sent events). extra: more header lines, each ending in "\r\n",
// or NULL.
int plm_server_send_head(conn *c, int status, const char *type, int64_t length, const char *extra);
// plm_server_send_json: b as the application/json body (500 when b ran out of memory)
void plm_server_send_json(conn *c, int status, const sbuf *b, const char *extra);
// plm_server_send_error: {"error": {"message": ..., "type": ..., "code": status}} (OpenAI's shape)
void plm_server_send_error(conn *c, int status, const char *extra, const char *fmt, ...)
    PLM_PRINTF(4, 5);
// plm_server_client_gone: 1 when the peer has closed its end (checked during generation)
int plm_server_client_gone(conn *c);
// plm_server_session_acquire: wait for the session. 0 = held; -1 = the queue is full; -2 =
// stopping.
int plm_server_session_acquire(server *s);
void plm_server_session_release(server *s);

// ---- server_api.c: the JSON API, called by server.c's route ----

typedef enum { API_PARAPHRASE, API_COMPLETIONS } api_kind;

// plm_server_handle_generate: /v1/paraphrase and /v1/completions
void plm_server_handle_generate(conn *c, api_kind kind);
// plm_server_handle_health: /v1/health
void plm_server_handle_health(conn *c);

#endif // !__EMSCRIPTEN__
#endif
