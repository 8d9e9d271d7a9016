// server_adapters.c: the LoRA adapters of `pocketlm serve` on one base model: those it started
// with (plm_server_params.adapters, or the one merged into the model file), those loaded since by
// POST /v1/adapters, and DELETE /v1/adapters/NAME; GET /v1/models lists them; each request picks
// one ("adapter": "name", or "model": "BASE:name"; the default otherwise) and holds a reference
// while it runs, so an adapter is never unloaded under a request. Adapters are applied unmerged,
// per sequence (session.c's step), so requests for different adapters share decode steps.
// Loading takes a directory on this machine: only a loopback client, or one with the API key, may
// load or unload. Not here: the requests themselves (server_api.c), routing (server.c).
#define _POSIX_C_SOURCE 200809L
#include "json.h"
#include "lora.h"
#include "server.h"

#if !defined(__EMSCRIPTEN__)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADD(b, lit) plm_sbuf_add((b), (lit), sizeof(lit) - 1) // a string literal

int plm_server_valid_name(const char *s, size_t n) {
    if (n < 1 || n > NAME_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

// valid_name: a NUL-terminated name
static int valid_name(const char *s) {
    return plm_server_valid_name(s, strlen(s));
}

int plm_server_model_id(const char *base, const char *id, size_t n, size_t *at) {
    size_t bn = strlen(base);
    if (n == bn && !memcmp(id, base, n)) return 0;
    if (n <= bn + 1 || memcmp(id, base, bn) || id[bn] != ':') return -1;
    *at = bn + 1;
    return plm_server_valid_name(id + bn + 1, n - bn - 1) ? 1 : -1;
}

// find: the entry named name (n bytes), or -1 (lock held)
static int find(const server *s, const char *name, size_t n) {
    for (int i = 0; i < MAX_ADAPTERS; i++)
        if (s->adapters[i].name[0] && strlen(s->adapters[i].name) == n &&
            !memcmp(s->adapters[i].name, name, n))
            return i;
    return -1;
}

// add: a new entry (lock held); its index, or -1 when all are taken
static int add(server *s, const char *name, const plm_lora *lora, plm_lora *owned) {
    for (int i = 0; i < MAX_ADAPTERS; i++) {
        adapter_entry *e = &s->adapters[i];
        if (e->name[0]) continue;
        size_t n = strlen(name);
        if (n > NAME_MAX_LEN) n = NAME_MAX_LEN;
        memcpy(e->name, name, n);
        e->name[n] = 0;
        e->lora = lora, e->owned = owned, e->refs = 0;
        return i;
    }
    return -1;
}

plm_status plm_server_adapters_init(server *s, plm_error *err) {
    const plm_server_params *p = s->p;
    s->default_adapter = -1;
    for (int32_t i = 0; i < p->n_adapters; i++) {
        const plm_server_adapter *a = &p->adapters[i];
        if (!a->name || !valid_name(a->name) || !a->lora)
            return plm_fail(err, PLM_ERR_ARG,
                            "serve: adapter %d: want a name of 1..%d letters, digits, '.', '_', "
                            "'-' and a loaded adapter; got '%s'",
                            i + 1, NAME_MAX_LEN, a->name ? a->name : "(null)");
        if (find(s, a->name, strlen(a->name)) >= 0)
            return plm_fail(err, PLM_ERR_ARG, "serve: two adapters are named '%s'", a->name);
        if (a->lora->rank > PLM_BATCH_MAX_RANK)
            return plm_fail(err, PLM_ERR_ARG, "serve: adapter '%s' has rank %d; at most %d",
                            a->name, a->lora->rank, PLM_BATCH_MAX_RANK);
        if (add(s, a->name, a->lora, NULL) < 0)
            return plm_fail(err, PLM_ERR_ARG, "serve: more than %d adapters", MAX_ADAPTERS);
    }
    const char *merged = p->model ? plm_model_adapter(p->model) : "";
    if (p->n_adapters == 0 && merged[0]) { // the model file has one folded in: it is the model
        add(s, merged, NULL, NULL);
        s->merged = 1;
    }
    if (s->adapters[0].name[0]) s->default_adapter = 0;
    return PLM_OK;
}

void plm_server_adapters_free(server *s) {
    for (int i = 0; i < MAX_ADAPTERS; i++) plm_lora_free(s->adapters[i].owned);
}

// ---- listing ----

// add_ids: the ids requests may name, as JSON strings separated by ", " (lock held)
static void add_ids(const server *s, sbuf *b) {
    const char *base = s->p->model_name;
    if (!s->merged) plm_sbuf_json_str(b, base, strlen(base));
    for (int i = 0, n = !s->merged; i < MAX_ADAPTERS; i++) {
        if (!s->adapters[i].name[0]) continue;
        char id[512];
        snprintf(id, sizeof id, "%s:%s", base, s->adapters[i].name);
        if (n++) ADD(b, ", ");
        plm_sbuf_json_str(b, id, strlen(id));
    }
}

void plm_server_handle_models(conn *c) {
    server *s = c->srv;
    const char *name = s->p->model ? plm_model_name(s->p->model) : "";
    sbuf ids = {0}, b = {0};
    pthread_mutex_lock(&s->lock);
    add_ids(s, &ids);
    pthread_mutex_unlock(&s->lock);
    ADD(&b, "{\"object\": \"list\", \"data\": [");
    // each id is a JSON string in ids; ", " separates them (names cannot hold a quote or comma)
    for (const char *at = ids.p; at && *at;) {
        const char *end = strstr(at, ", ");
        size_t n = end ? (size_t)(end - at) : strlen(at);
        if (at != ids.p) ADD(&b, ", ");
        ADD(&b, "{\"id\": ");
        plm_sbuf_add(&b, at, n);
        ADD(&b, ", \"object\": \"model\", \"created\": 0, \"owned_by\": \"pocketlm\", \"name\": ");
        plm_sbuf_json_str(&b, name, strlen(name));
        ADD(&b, "}");
        at = end ? end + 2 : at + n;
    }
    ADD(&b, "]}\n");
    if (ids.oom) b.oom = 1;
    plm_server_send_json(c, 200, &b, NULL);
    free(ids.p);
    free(b.p);
}

void plm_server_adapter_names(server *s, char def[NAME_MAX_LEN + 1], sbuf *b) {
    pthread_mutex_lock(&s->lock);
    snprintf(def, NAME_MAX_LEN + 1, "%s",
             s->default_adapter >= 0 ? s->adapters[s->default_adapter].name : "");
    ADD(b, "[");
    for (int i = 0, n = 0; i < MAX_ADAPTERS; i++) {
        if (!s->adapters[i].name[0]) continue;
        if (n++) ADD(b, ", ");
        plm_sbuf_json_str(b, s->adapters[i].name, strlen(s->adapters[i].name));
    }
    ADD(b, "]");
    pthread_mutex_unlock(&s->lock);
}

// ---- picking one per request ----

// unknown: 404 naming what was asked for and what is served (lock held)
static int unknown(conn *c, const char *key, const plm_json *j, int32_t i) {
    char want[160];
    int64_t n = plm_json_str(j, i, want, sizeof want);
    sbuf ids = {0};
    add_ids(c->srv, &ids);
    pthread_mutex_unlock(&c->srv->lock);
    plm_server_send_error(c, 404, NULL,
                          "\"%s\": '%s%s' is not served here; GET /v1/models lists %s", key, want,
                          n >= (int64_t)sizeof want ? "..." : "", ids.p ? ids.p : "nothing");
    free(ids.p);
    return -1;
}

// bad: 400 with msg, unlocking first
static int bad(conn *c, const char *msg) {
    pthread_mutex_unlock(&c->srv->lock);
    return plm_server_send_error(c, 400, NULL, "%s", msg), -1;
}

// named: the entry "model" names (-1 the base, -2 not served) (lock held)
static int named(const server *s, const plm_json *j, int32_t mi) {
    char id[512];
    size_t at = 0;
    int64_t n = plm_json_str(j, mi, id, sizeof id);
    if (n < 0 || n >= (int64_t)sizeof id) return -2;
    int k = plm_server_model_id(s->p->model_name, id, (size_t)n, &at);
    if (k == 0) return s->merged ? -2 : -1;
    int e = k > 0 ? find(s, id + at, (size_t)n - at) : -1;
    return e >= 0 ? e : -2;
}

int plm_server_pick_adapter(conn *c, const plm_json *j, int *entry, const plm_lora **lora,
                            char id[512]) {
    server *s = c->srv;
    int32_t ai = plm_json_get(j, 0, "adapter"), mi = plm_json_get(j, 0, "model");
    if (ai >= 0 && j->tok[ai].type == PLM_JSON_NULL) ai = -1;
    if (mi >= 0 && j->tok[mi].type == PLM_JSON_NULL) mi = -1;
    if ((ai >= 0 && j->tok[ai].type != PLM_JSON_STRING) ||
        (mi >= 0 && j->tok[mi].type != PLM_JSON_STRING))
        return plm_server_send_error(c, 400, NULL, "\"model\" and \"adapter\" must be strings"), -1;
    pthread_mutex_lock(&s->lock);
    int e = s->default_adapter, from_model = -3;
    if (mi >= 0 && (from_model = named(s, j, mi)) == -2) return unknown(c, "model", j, mi);
    if (from_model != -3) e = from_model;
    if (ai >= 0) {
        int64_t n = plm_json_str(j, ai, NULL, 0);
        int ea = n == 0 ? -1 : -2;
        if (n > 0) {
            char name[NAME_MAX_LEN + 2];
            plm_json_str(j, ai, name, sizeof name);
            if (n <= NAME_MAX_LEN && (ea = find(s, name, (size_t)n)) < 0) ea = -2;
        }
        if (ea == -2) return unknown(c, "adapter", j, ai);
        if (ea == -1 && s->merged)
            return bad(c, "\"adapter\": the adapter is merged into this model file");
        if (from_model >= 0 && ea != from_model)
            return bad(c, "\"model\" and \"adapter\" name different adapters");
        e = ea;
    }
    if (e >= 0) s->adapters[e].refs++;
    *entry = e;
    *lora = e >= 0 ? s->adapters[e].lora : NULL;
    if (e >= 0) snprintf(id, 512, "%s:%s", s->p->model_name, s->adapters[e].name);
    else snprintf(id, 512, "%s", s->p->model_name);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void plm_server_adapter_release(server *s, int entry) {
    if (entry < 0) return;
    pthread_mutex_lock(&s->lock);
    s->adapters[entry].refs--;
    pthread_mutex_unlock(&s->lock);
}

// ---- POST /v1/adapters, DELETE /v1/adapters/NAME ----

// load: POST {"name", "path"}: a PEFT adapter directory on this machine, for this base
static void load(conn *c) {
    server *s = c->srv;
    plm_json j = {0};
    plm_error err = {0};
    char name[NAME_MAX_LEN + 2] = "", *path = NULL;
    plm_lora *l = NULL;
    if (!c->req.json) {
        plm_server_send_error(c, 415, NULL, "send the body as Content-Type: application/json");
        return;
    }
    if (!c->body || plm_json_parse(&j, c->body, c->body_len, "request body", &err) != PLM_OK) {
        plm_server_send_error(c, 400, NULL, "%s", c->body ? err.msg : "the request has no body");
        return;
    }
    int32_t ni = j.tok[0].type == PLM_JSON_OBJECT ? plm_json_get(&j, 0, "name") : -1;
    int32_t pi = j.tok[0].type == PLM_JSON_OBJECT ? plm_json_get(&j, 0, "path") : -1;
    int64_t pn = pi >= 0 && j.tok[pi].type == PLM_JSON_STRING ? plm_json_str(&j, pi, NULL, 0) : -1;
    if (ni >= 0 && j.tok[ni].type == PLM_JSON_STRING) plm_json_str(&j, ni, name, sizeof name);
    if (!valid_name(name) || pn <= 0 || pn > 4096) {
        plm_server_send_error(c, 400, NULL,
                              "want {\"name\": 1..%d of A-Z a-z 0-9 . _ -, \"path\": the adapter's "
                              "directory on the server}",
                              NAME_MAX_LEN);
        goto done;
    }
    if (!(path = malloc((size_t)pn + 1))) {
        plm_server_send_error(c, 500, NULL, "out of memory");
        goto done;
    }
    plm_json_str(&j, pi, path, (size_t)pn + 1);
    pthread_mutex_lock(&s->lock);
    int taken = find(s, name, strlen(name)) >= 0;
    pthread_mutex_unlock(&s->lock);
    if (taken) {
        plm_server_send_error(c, 409, NULL, "adapter '%s' is loaded already", name);
        goto done;
    }
    if (plm_lora_load(&l, path, s->p->model, &err) != PLM_OK) {
        plm_server_send_error(c, 400, NULL, "%s", err.msg);
        goto done;
    }
    if (l->rank > PLM_BATCH_MAX_RANK) {
        plm_server_send_error(c, 400, NULL, "adapter rank %d; this server runs at most %d", l->rank,
                              PLM_BATCH_MAX_RANK);
        goto done;
    }
    pthread_mutex_lock(&s->lock); // loading took a while: the name may have been taken since
    int e = find(s, name, strlen(name)) >= 0 ? -2 : add(s, name, l, l);
    pthread_mutex_unlock(&s->lock);
    if (e < 0) {
        if (e == -2) plm_server_send_error(c, 409, NULL, "adapter '%s' is loaded already", name);
        else
            plm_server_send_error(c, 400, NULL, "this server holds %d adapters at most",
                                  MAX_ADAPTERS);
        goto done;
    }
    plm_server_log(s, "%s loaded adapter %s (rank %d)", c->peer, name, l->rank);
    l = NULL; // the entry owns it
    sbuf b = {0};
    ADD(&b, "{\"object\": \"adapter\", \"name\": ");
    plm_sbuf_json_str(&b, name, strlen(name));
    plm_sbuf_addf(&b, ", \"id\": ");
    char id[512];
    snprintf(id, sizeof id, "%s:%s", s->p->model_name, name);
    plm_sbuf_json_str(&b, id, strlen(id));
    ADD(&b, "}\n");
    plm_server_send_json(c, 200, &b, NULL);
    free(b.p);
done:
    plm_lora_free(l);
    free(path);
    plm_json_free(&j);
}

// unload: DELETE /v1/adapters/NAME, unless a request is using it (409)
static void unload(conn *c, const char *name) {
    server *s = c->srv;
    pthread_mutex_lock(&s->lock);
    int e = find(s, name, strlen(name));
    adapter_entry *a = e >= 0 ? &s->adapters[e] : NULL;
    int refs = a ? a->refs : 0, merged = a && !a->lora;
    plm_lora *owned = NULL;
    if (a && !refs && !merged) {
        owned = a->owned;
        memset(a, 0, sizeof *a);
        if (s->default_adapter == e) s->default_adapter = -1; // then the base
    }
    pthread_mutex_unlock(&s->lock);
    if (!a) {
        plm_server_send_error(c, 404, NULL, "no adapter '%s' is loaded", name);
    } else if (merged) {
        plm_server_send_error(c, 400, NULL, "adapter '%s' is merged into the model file", name);
    } else if (refs) {
        plm_server_send_error(c, 409, NULL, "adapter '%s' is in use by %d request%s; retry later",
                              name, refs, refs == 1 ? "" : "s");
    } else {
        plm_lora_free(owned); // no request holds it: nothing reads it any more
        plm_server_log(s, "%s unloaded adapter %s", c->peer, name);
        sbuf b = {0};
        ADD(&b, "{\"object\": \"adapter\", \"name\": ");
        plm_sbuf_json_str(&b, name, strlen(name));
        ADD(&b, ", \"deleted\": true}\n");
        plm_server_send_json(c, 200, &b, NULL);
        free(b.p);
    }
}

void plm_server_handle_adapters(conn *c) {
    server *s = c->srv;
    const char *m = c->req.method, *path = c->req.path;
    int del = !strncmp(path, "/v1/adapters/", 13);
    if (del ? strcmp(m, "DELETE") : strcmp(m, "POST")) {
        plm_server_send_error(c, 405, del ? "Allow: DELETE\r\n" : "Allow: POST\r\n",
                              "%s takes %s, not %s", path, del ? "DELETE" : "POST", m);
        return;
    }
    // the path names a directory of this machine: a remote client needs the key (the guard has
    // checked it when there is one)
    if (!(s->p->api_key && s->p->api_key[0]) && !plm_server_loopback(c->peer)) {
        plm_server_send_error(c, 403, NULL,
                              "adapters are loaded and unloaded from this machine "
                              "only, or with the API key");
        return;
    }
    if (!s->p->model) {
        plm_server_send_error(c, 503, NULL, "this server has no model loaded");
        return;
    }
    if (del) unload(c, path + 13);
    else load(c);
}

#endif // !__EMSCRIPTEN__
