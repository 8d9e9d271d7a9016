// test_chart.c: plm_loss_chart_svg, the training-loss chart: the SVG is well-formed XML (a strict
// little checker below: tags nest and close, attributes are quoted, text has no raw '<' or '&'
// outside entities), it has its labels (step, epoch, loss, the legend), tick labels on each axis,
// one dot per eval point, a smoothed curve that is smoother than the raw one and follows it, and
// odd input (no data, NaN, a title with markup) still gives a valid document. The trade-off chart
// of `pocketlm eval` (plm_tradeoff_chart_svg) likewise.
#include <ctype.h>
#include <math.h>
#include <stdint.h>

#include "pocketlm.h"
#include "test.h"

// ---- a strict XML well-formedness check (enough for SVG without DTDs or CDATA) ----

// xml_ok: 1 when doc is one element whose tags nest, with quoted attributes and escaped text;
// else 0 and *why says where
static int xml_ok(const char *doc, const char **why) {
    char stack[64][32];
    int depth = 0, roots = 0;
    const char *p = doc;
    while (*p) {
        if (*p != '<') {
            if (*p == '&') { // an entity: &name; or &#...;
                const char *e = p + 1;
                while (*e && (isalnum((unsigned char)*e) || *e == '#')) e++;
                if (*e != ';' || e == p + 1) return *why = p, 0;
            }
            if (*p == '>' || (depth == 0 && !isspace((unsigned char)*p))) return *why = p, 0;
            p++;
            continue;
        }
        int closing = p[1] == '/';
        const char *q = p + 1 + closing, *name = q;
        while (*q && (isalnum((unsigned char)*q) || *q == '-' || *q == ':' || *q == '_')) q++;
        size_t nl = (size_t)(q - name);
        if (nl == 0 || nl >= sizeof stack[0]) return *why = p, 0;
        // attributes: name="value" (no '<' in values)
        for (;;) {
            while (isspace((unsigned char)*q)) q++;
            if (*q == '>' || (*q == '/' && q[1] == '>') || !*q) break;
            if (closing) return *why = q, 0;
            const char *a = q;
            while (*q && (isalnum((unsigned char)*q) || *q == '-' || *q == ':' || *q == '_')) q++;
            if (q == a || *q != '=' || (q[1] != '"' && q[1] != '\'')) return *why = q, 0;
            char quote = q[1];
            q += 2;
            while (*q && *q != quote && *q != '<') q++;
            if (*q != quote) return *why = q, 0;
            q++;
        }
        if (!*q) return *why = p, 0;
        int self = *q == '/';
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != nl || memcmp(stack[depth - 1], name, nl))
                return *why = p, 0;
            depth--;
        } else if (!self) {
            if (depth == 0 && roots++) return *why = p, 0; // a second root
            if (depth == 64) return *why = p, 0;
            memcpy(stack[depth], name, nl);
            stack[depth++][nl] = 0;
        } else if (depth == 0) {
            return *why = p, 0;
        }
        p = q + 1 + self;
    }
    if (depth != 0 || roots != 1) return *why = p, 0;
    return 1;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

// points: the y coordinates of the polyline of class cls into ys (cap); returns their count
static int points(const char *svg, const char *cls, float *ys, int cap) {
    char key[64];
    snprintf(key, sizeof key, "class=\"%s\"", cls);
    const char *p = strstr(svg, key);
    if (!p || !(p = strstr(p, "points=\""))) return 0;
    p += 8;
    int n = 0;
    float x, y;
    int used;
    while (n < cap && sscanf(p, "%f,%f %n", &x, &y, &used) == 2) ys[n++] = y, p += used;
    return n;
}

// variation: sum of |y[i] - y[i-1]|
static double variation(const float *y, int n) {
    double v = 0;
    for (int i = 1; i < n; i++) v += fabs((double)y[i] - (double)y[i - 1]);
    return v;
}

// ---- the tests ----

static void test_self_check(void) {
    const char *why;
    CHECK(xml_ok("<svg a=\"1\"><g><text>x &amp; y</text></g><line b='2'/></svg>\n", &why));
    CHECK(!xml_ok("<svg><g></svg></g>", &why));            // crossed tags
    CHECK(!xml_ok("<svg><text>a < b</text></svg>", &why)); // raw '<'
    CHECK(!xml_ok("<svg><text>a & b</text></svg>", &why)); // raw '&'
    CHECK(!xml_ok("<svg a=1></svg>", &why));               // unquoted attribute
    CHECK(!xml_ok("<svg></svg><svg></svg>", &why));        // two roots
    CHECK(!xml_ok("<svg>", &why));                         // unclosed
}

// a run like a real one: 600 steps, 3 epochs of 200, loss falling from ~3 to ~0.6 with noise,
// eval every 100 steps
static void test_chart(void) {
    enum { N = 600, NE = 6 };
    static float step[N], loss[N], es[NE], el[NE];
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float noise = (float)(s >> 40) / 16777216.0f - 0.5f; // [-0.5, 0.5)
        step[i] = (float)(i + 1);
        loss[i] = 0.6f + 2.4f * expf(-(float)i / 80.0f) + 0.4f * noise;
    }
    for (int k = 0; k < NE; k++)
        es[k] = (float)(100 * (k + 1)), el[k] = 0.7f + 0.5f * expf(-(float)k);
    plm_loss_chart c = {step, loss, N, es, el, NE, 200.0f, "LoRA <paws> & co", 0, 0};
    char *svg = NULL;
    size_t len = 0;
    plm_error err;
    if (plm_loss_chart_svg(&svg, &len, &c, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    const char *why = "";
    CHECK(len == strlen(svg) && len > 1000);
    CHECK_MSG(xml_ok(svg, &why), "not well-formed at byte %d: %.60s", (int)(why - svg), why);
    CHECK(!strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39));
    CHECK(strstr(svg, ">step</text>") && strstr(svg, ">epoch</text>") && strstr(svg, ">loss ("));
    CHECK(strstr(svg, "LoRA &lt;paws&gt; &amp; co") && !strstr(svg, "<paws>"));
    CHECK(strstr(svg, ">train loss, each step<") && strstr(svg, ">held-out eval loss<") &&
          strstr(svg, ">train loss, EMA over ~15 steps<"));
    // ticks: steps 0..600 by 100, epochs 0..3 by 0.5, at least 4 loss ticks
    CHECK(strstr(svg, ">0</text>") && strstr(svg, ">300</text>") && strstr(svg, ">600</text>"));
    CHECK(strstr(svg, ">1.5</text>") && strstr(svg, ">3</text>"));
    const char *y = strstr(svg, "class=\"y-axis\""), *ye = y ? strstr(y, "</g>") : NULL;
    int yticks = 0;
    for (const char *p = y; p && p < ye && (p = strstr(p, "<text")) && p < ye; p++) yticks++;
    CHECK_MSG(yticks >= 4, "%d loss ticks", yticks);
    CHECK_MSG(count(svg, "<circle class=\"eval\"") == NE, "eval dots %d",
              count(svg, "<circle class=\"eval\""));
    CHECK(count(svg, "stroke-dasharray") == 3); // the epoch boundaries 1, 2, 3
    // the smoothed curve: every step, far smoother than the raw one, and on it on average where the
    // loss is flat (where it falls fast the average lags, as any EMA does)
    static float raw[N], ema[N];
    int nr = points(svg, "train-raw", raw, N), ns = points(svg, "train-smooth", ema, N);
    CHECK_MSG(nr == N && ns == N, "points: raw %d, smooth %d", nr, ns);
    if (nr == N && ns == N) {
        double vr = variation(raw, N), vs = variation(ema, N), mean = 0;
        for (int i = N / 2; i < N; i++) mean += (double)raw[i] - (double)ema[i]; // the flat half
        CHECK_MSG(vs < 0.25 * vr, "smoothed variation %.0f px vs raw %.0f px", vs, vr);
        CHECK_MSG(fabs(mean / (N / 2)) < 3.0,
                  "smoothed curve off the raw one by %.1f px on average", mean / (N / 2));
    }
    free(svg);
}

// no data, a NaN, one step, no epoch axis: still valid documents
static void test_odd_input(void) {
    const char *why = "";
    char *svg = NULL;
    plm_error err;
    plm_loss_chart empty = {0};
    CHECK(plm_loss_chart_svg(&svg, NULL, &empty, &err) == PLM_OK && xml_ok(svg, &why) &&
          strstr(svg, "no steps yet") && !strstr(svg, ">epoch<"));
    free(svg);
    float st[3] = {1, 2, 3}, lo[3] = {2.0f, NAN, 1.5f}, e1 = 3, ev = NAN;
    plm_loss_chart c = {st, lo, 3, &e1, &ev, 1, 2.0f, NULL, 0, 0};
    CHECK(plm_loss_chart_svg(&svg, NULL, &c, &err) == PLM_OK && xml_ok(svg, &why) &&
          !strstr(svg, "nan") && count(svg, "<circle class=\"eval\"") == 0 &&
          strstr(svg, ">Training loss<"));
    free(svg);
    plm_loss_chart one = {st, lo, 1, NULL, NULL, 0, 0, NULL, 0, 0};
    CHECK(plm_loss_chart_svg(&svg, NULL, &one, &err) == PLM_OK && xml_ok(svg, &why) &&
          !strstr(svg, "nan"));
    free(svg);
    plm_loss_chart bad = {NULL, NULL, 3, NULL, NULL, 0, 0, NULL, 0, 0};
    CHECK(plm_loss_chart_svg(&svg, NULL, &bad, &err) == PLM_ERR_ARG);
    plm_loss_chart tiny = {st, lo, 3, NULL, NULL, 0, 0, NULL, 50, 50};
    CHECK(plm_loss_chart_svg(&svg, NULL, &tiny, &err) == PLM_ERR_ARG &&
          strstr(err.msg, "too small"));
}

// the trade-off chart: well-formed, its axes, a dot and a label per finite point (markup escaped),
// a line per joined pair of a series, the copy baseline's dashed line when asked
static void test_tradeoff(void) {
    const float x[5] = {100.0f, 83.7f, 70.2f, 61.5f, NAN}, y[5] = {65.6f, 62.6f, 60.1f, 55.0f, 1};
    const char *label[5] = {"copy", "D=0 <a&b>", "D=0.5", "D=1", "nan"};
    const int32_t series[5] = {0, 1, 1, 1, 1};
    plm_tradeoff_chart c = {x, y, label, series, 5, 32.46f, NULL, 0, 0};
    char *svg = NULL;
    const char *why = NULL;
    plm_error err = {0};
    CHECK(plm_tradeoff_chart_svg(&svg, NULL, &c, &err) == PLM_OK && svg);
    if (!svg) return;
    CHECK_MSG(xml_ok(svg, &why), "not well-formed at: %.60s", why ? why : "");
    CHECK(count(svg, "<circle class=\"run\"") == 4 && strstr(svg, ">D=0 &lt;a&amp;b&gt;<"));
    CHECK(strstr(svg, ">BLEU (against the references)<") && strstr(svg, ">self-BLEU (against"));
    CHECK(count(svg, "class=\"copy-ibleu\"") == 1 && strstr(svg, "(32.46)"));
    CHECK(count(svg, "stroke-width=\"1.5\"") == 2); // D=0 - D=0.5 - D=1; NaN breaks the last
    CHECK(strstr(svg, ">100</text>") && !strstr(svg, "nan"));
    free(svg);
    c.copy_ibleu = NAN, c.series = NULL, c.label = NULL;
    CHECK(plm_tradeoff_chart_svg(&svg, NULL, &c, &err) == PLM_OK && xml_ok(svg, &why) &&
          !strstr(svg, "copy-ibleu") && !strstr(svg, "stroke-width=\"1.5\""));
    free(svg);
    plm_tradeoff_chart none = {NULL, NULL, NULL, NULL, 0, NAN, "t", 0, 0};
    CHECK(plm_tradeoff_chart_svg(&svg, NULL, &none, &err) == PLM_OK && xml_ok(svg, &why));
    free(svg);
    none.n = 2;
    CHECK(plm_tradeoff_chart_svg(&svg, NULL, &none, &err) == PLM_ERR_ARG);
}

int main(void) {
    test_self();
    test_self_check();
    test_chart();
    test_odd_input();
    test_tradeoff();
    return test_main_end("test_chart");
}
