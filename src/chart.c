// chart.c: the charts, each one self-contained SVG string. plm_loss_chart_svg, the training-loss
// chart: the raw train loss of every step (faint), its exponential moving average (bold), the
// held-out eval loss (dots), a step axis below and an epoch axis above, a loss axis, ticks at 1-2-5
// steps, labels and a legend. plm_tradeoff_chart_svg, the paraphrase trade-off of `pocketlm eval`:
// BLEU against self-BLEU, a labeled dot per run, the runs of one series joined, and the line of
// the copy baseline's iBLEU. Pure: data in, text out, no file and no global state, so that
// plm_finetune's loss.svg and the web app's Train view draw the same chart. Not here: writing the
// files (finetune.c, cli/eval.c).
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

// ---- a growing text buffer ----

typedef struct {
    char *p;
    size_t n, cap;
    int oom; // an allocation failed: everything after is dropped
} text;

static void put(text *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->oom = 1;
            return;
        }
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = (t->cap + (size_t)k + 1) * 2;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->oom = 1;
            return;
        }
        t->p = q, t->cap = cap;
    }
}

// put_escaped: s as XML character data (& < > " escaped)
static void put_escaped(text *t, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': put(t, "&amp;"); break;
        case '<': put(t, "&lt;"); break;
        case '>': put(t, "&gt;"); break;
        case '"': put(t, "&quot;"); break;
        default: put(t, "%c", *s);
        }
    }
}

// ---- scales ----

// nice_step: a tick spacing of 1, 2 or 5 times a power of ten giving at most about `want` ticks
// over range (> 0)
static double nice_step(double range, int want) {
    double raw = range / want, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

typedef struct {
    double lo, hi; // data range mapped onto the pixels
    double p0, p1; // pixel of lo, pixel of hi
} scale;

static double at(const scale *s, double v) {
    return s->p0 + (v - s->lo) / (s->hi - s->lo) * (s->p1 - s->p0);
}

// ---- the parts every chart has ----

// head: the document's start, white background and bold title; the plot area (L, T)-(R, B) as the
// clip path "plot"
static void head(text *t, double W, double H, double L, double T, double R, double B,
                 const char *title) {
    put(t,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
        "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
        W, H, W, H);
    put(t, "<title>");
    put_escaped(t, title);
    put(t, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    put(t,
        "<defs><clipPath id=\"plot\"><rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\"/>"
        "</clipPath></defs>\n",
        L, T, R - L, B - T);
    put(t, "<text x=\"%.0f\" y=\"18\" font-size=\"14\" font-weight=\"bold\">", L);
    put_escaped(t, title);
    put(t, "</text>\n");
}

// y_axis: grid lines from L to R and labels at the ticks of sy (every ys), and the axis name
// turned along the left edge
static void y_axis(text *t, const scale *sy, double ys, double L, double R, double T, double B,
                   const char *name) {
    put(t, "<g class=\"y-axis\" stroke=\"#ddd\">\n");
    for (int k = 0; sy->lo + k * ys <= sy->hi + ys * 1e-6; k++) {
        double v = sy->lo + k * ys, y = at(sy, v);
        put(t,
            "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\"/>"
            "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" stroke=\"none\" "
            "fill=\"#333\">%g</text>\n",
            L - 4, y, R, y, L - 7, y + 4, fabs(v) < ys * 1e-6 ? 0.0 : v);
    }
    put(t,
        "</g>\n<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.0f)\">",
        (T + B) / 2, (T + B) / 2);
    put_escaped(t, name);
    put(t, "</text>\n");
}

// x_axis: tick marks and labels below B at the multiples of xs in sx's range, and the axis name
static void x_axis(text *t, const scale *sx, double xs, double L, double R, double B,
                   const char *name) {
    put(t, "<g class=\"x-axis\" stroke=\"#333\">\n");
    for (int k = (int)ceil(sx->lo / xs - 1e-9); k * xs <= sx->hi * (1 + 1e-9); k++) {
        double x = at(sx, k * xs);
        put(t,
            "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\"/>"
            "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" stroke=\"none\" "
            "fill=\"#333\">%g</text>\n",
            x, B, x, B + 5, x, B + 18, k * xs);
    }
    put(t, "</g>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">", (L + R) / 2, B + 38);
    put_escaped(t, name);
    put(t, "</text>\n");
}

// ---- the loss chart ----

// smooth: the exponential moving average of y (n) into out, bias-corrected as TensorBoard's (the
// first value is y[0], not beta * 0 + ...); non-finite values are carried over. window ~ 1/(1-beta).
static void smooth(float *out, const float *y, int32_t n, double window) {
    double beta = 1.0 - 1.0 / window, s = 0.0, w = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if (isfinite(y[i])) {
            s = beta * s + (1.0 - beta) * (double)y[i];
            w = beta * w + (1.0 - beta);
        }
        out[i] = w > 0.0 ? (float)(s / w) : y[i];
    }
}

// polyline: the finite points of (x, y) as one SVG polyline with the given attributes
static void polyline(text *t, const scale *sx, const scale *sy, const float *x, const float *y,
                     int32_t n, const char *attrs) {
    put(t, "<polyline %s points=\"", attrs);
    for (int32_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            put(t, "%.1f,%.1f ", at(sx, (double)x[i]), at(sy, (double)y[i]));
    put(t, "\"/>\n");
}

plm_status plm_loss_chart_svg(char **out, size_t *len, const plm_loss_chart *c, plm_error *err) {
    if (!out || !c || c->n < 0 || c->n_eval < 0 || (c->n && (!c->step || !c->loss)) ||
        (c->n_eval && (!c->eval_step || !c->eval_loss)) || c->width < 0 || c->height < 0)
        return plm_fail(err, PLM_ERR_ARG, "loss chart: bad arguments");
    *out = NULL;
    const double W = c->width ? c->width : 720, H = c->height ? c->height : 400;
    const double L = 70, R = W - 20, T = c->steps_per_epoch > 0 ? 70 : 44, B = H - 50;
    if (R - L < 100 || B - T < 80)
        return plm_fail(err, PLM_ERR_ARG, "loss chart: %.0f x %.0f is too small", W, H);
    float *ema = plm_alloc((size_t)(c->n ? c->n : 1), sizeof *ema);
    if (!ema) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    double window = c->n / 40.0 < 1.0 ? 1.0 : c->n / 40.0 > 200.0 ? 200.0 : c->n / 40.0;
    if (c->n) smooth(ema, c->loss, c->n, window);

    // ranges: x from 0 to the last step; y over the smoothed curve and the eval points (the raw
    // curve's first steps and spikes would flatten the rest: it is clipped to the plot)
    double xmax = 0, ylo = (double)INFINITY, yhi = -(double)INFINITY;
    for (int32_t i = 0; i < c->n; i++) {
        double x = (double)c->step[i], y = (double)ema[i];
        if (isfinite(x) && x > xmax) xmax = x;
        if (isfinite(y)) ylo = fmin(ylo, y), yhi = fmax(yhi, y);
    }
    for (int32_t i = 0; i < c->n_eval; i++) {
        double x = (double)c->eval_step[i], y = (double)c->eval_loss[i];
        if (isfinite(x) && x > xmax) xmax = x;
        if (isfinite(y)) ylo = fmin(ylo, y), yhi = fmax(yhi, y);
    }
    if (xmax <= 0) xmax = 1;
    if (!(ylo <= yhi)) ylo = 0, yhi = 1;
    if (yhi - ylo < 1e-6) ylo -= 0.5, yhi += 0.5;
    double ys = nice_step(yhi - ylo, 5), xs = nice_step(xmax, 8);
    scale sx = {0, xmax, L, R}, sy = {floor(ylo / ys) * ys, ceil(yhi / ys) * ys, B, T};

    text t = {0};
    head(&t, W, H, L, T, R, B, c->title ? c->title : "Training loss");

    // ---- axes: the loss (left), steps (bottom), epochs (top) ----
    y_axis(&t, &sy, ys, L, R, T, B, "loss (nats per target token)");
    x_axis(&t, &sx, xs, L, R, B, "step");
    if (c->steps_per_epoch > 0) {
        double spe = (double)c->steps_per_epoch, epochs = xmax / spe, es = nice_step(epochs, 6);
        put(&t, "<g class=\"epoch-axis\" stroke=\"#333\">\n");
        for (int k = 0; k * es <= epochs * (1 + 1e-9); k++) {
            double x = at(&sx, k * es * spe);
            int whole = fabs(k * es - round(k * es)) < 1e-9 && k > 0; // an epoch boundary
            put(&t,
                "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\"/>"
                "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" stroke=\"none\" "
                "fill=\"#333\">%g</text>\n",
                x, T - 5, x, T, x, T - 9, k * es);
            if (whole)
                put(&t,
                    "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#bbb\" "
                    "stroke-dasharray=\"4 3\"/>\n",
                    x, T, x, B);
        }
        put(&t, "</g>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">epoch</text>\n",
            (L + R) / 2, T - 26);
    }
    put(&t,
        "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
        "stroke=\"#333\"/>\n",
        L, T, R - L, B - T);

    // ---- the series ----
    put(&t, "<g clip-path=\"url(#plot)\" fill=\"none\">\n");
    if (c->n) {
        polyline(
            &t, &sx, &sy, c->step, c->loss, c->n,
            "class=\"train-raw\" stroke=\"#1f77b4\" stroke-opacity=\"0.3\" stroke-width=\"1\"");
        polyline(&t, &sx, &sy, c->step, ema, c->n,
                 "class=\"train-smooth\" stroke=\"#1f77b4\" stroke-width=\"2.2\"");
    }
    if (c->n_eval) {
        polyline(&t, &sx, &sy, c->eval_step, c->eval_loss, c->n_eval,
                 "class=\"eval-line\" stroke=\"#d62728\" stroke-width=\"1.2\"");
        for (int32_t i = 0; i < c->n_eval; i++)
            if (isfinite(c->eval_step[i]) && isfinite(c->eval_loss[i]))
                put(&t,
                    "<circle class=\"eval\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#d62728\"/>\n",
                    at(&sx, (double)c->eval_step[i]), at(&sy, (double)c->eval_loss[i]));
    }
    put(&t, "</g>\n");
    if (!c->n && !c->n_eval)
        put(&t,
            "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#888\">no steps "
            "yet</text>\n",
            (L + R) / 2, (T + B) / 2);

    // ---- the legend (top right, inside the plot) ----
    double lx = R - 258, ly = T + 8;
    put(&t,
        "<g class=\"legend\">\n<rect x=\"%.0f\" y=\"%.0f\" width=\"250\" height=\"58\" "
        "fill=\"white\" "
        "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
        lx, ly);
    put(&t,
        "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" "
        "stroke-opacity=\"0.3\"/>"
        "<text x=\"%.0f\" y=\"%.0f\">train loss, each step</text>\n",
        lx + 8, ly + 14, lx + 32, ly + 14, lx + 40, ly + 18);
    put(&t,
        "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" "
        "stroke-width=\"2.2\"/>"
        "<text x=\"%.0f\" y=\"%.0f\">train loss, EMA over ~%.0f steps</text>\n",
        lx + 8, ly + 30, lx + 32, ly + 30, lx + 40, ly + 34, window);
    put(&t,
        "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"3.5\" fill=\"#d62728\"/>"
        "<text x=\"%.0f\" y=\"%.0f\">held-out eval loss</text>\n</g>\n</svg>\n",
        lx + 20, ly + 46, lx + 40, ly + 50);
    free(ema);
    if (t.oom) {
        free(t.p);
        return plm_fail(err, PLM_ERR_NOMEM, "loss chart: out of memory");
    }
    *out = t.p;
    if (len) *len = t.n;
    return PLM_OK;
}

// ---- the trade-off chart ----

// The colours of the series, in turn.
static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                     "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

plm_status plm_tradeoff_chart_svg(char **out, size_t *len, const plm_tradeoff_chart *c,
                                  plm_error *err) {
    if (!out || !c || c->n < 0 || (c->n && (!c->self_bleu || !c->bleu)) || c->width < 0 ||
        c->height < 0)
        return plm_fail(err, PLM_ERR_ARG, "trade-off chart: bad arguments");
    *out = NULL;
    const double W = c->width ? c->width : 720, H = c->height ? c->height : 480;
    const double L = 70, R = W - 20, T = 44, B = H - 50;
    if (R - L < 100 || B - T < 80)
        return plm_fail(err, PLM_ERR_ARG, "trade-off chart: %.0f x %.0f is too small", W, H);
    // ranges: the points with a margin, self-BLEU up to 100 (the copy baseline's)
    double xlo = 100, ylo = (double)INFINITY, yhi = -(double)INFINITY;
    for (int32_t i = 0; i < c->n; i++) {
        double x = (double)c->self_bleu[i], y = (double)c->bleu[i];
        if (!isfinite(x) || !isfinite(y)) continue;
        xlo = fmin(xlo, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
    }
    if (!(ylo <= yhi)) ylo = 0, yhi = 100;
    double xs = nice_step(100 - xlo + 10, 8), ys = nice_step(yhi - ylo + 10, 6);
    scale sx = {fmax(0, floor((xlo - 5) / xs) * xs), 100, L, R};
    scale sy = {fmax(0, floor((ylo - 5) / ys) * ys), fmin(100, ceil((yhi + 5) / ys) * ys), B, T};
    if (sy.hi <= sy.lo) sy.hi = sy.lo + ys;

    text t = {0};
    head(&t, W, H, L, T, R, B, c->title ? c->title : "BLEU against self-BLEU");
    y_axis(&t, &sy, ys, L, R, T, B, "BLEU (against the references)");
    x_axis(&t, &sx, xs, L, R, B, "self-BLEU (against the inputs; lower = more diverse)");
    put(&t,
        "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
        "stroke=\"#333\"/>\n",
        L, T, R - L, B - T);
    put(&t, "<g clip-path=\"url(#plot)\">\n");
    if (isfinite(c->copy_ibleu)) { // 0.8 BLEU - 0.2 self-BLEU = copy_ibleu: above it beats copying
        double b0 = ((double)c->copy_ibleu + 0.2 * sx.lo) / 0.8;
        double b1 = ((double)c->copy_ibleu + 0.2 * sx.hi) / 0.8;
        put(&t,
            "<line class=\"copy-ibleu\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"#888\" stroke-dasharray=\"5 4\"/>\n",
            at(&sx, sx.lo), at(&sy, b0), at(&sx, sx.hi), at(&sy, b1));
    }
    for (int32_t i = 0; i + 1 < c->n; i++) // a series' points joined in order
        if (c->series && c->series[i] == c->series[i + 1] && isfinite(c->self_bleu[i]) &&
            isfinite(c->bleu[i]) && isfinite(c->self_bleu[i + 1]) && isfinite(c->bleu[i + 1]))
            put(&t,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"1.5\"/>\n",
                at(&sx, (double)c->self_bleu[i]), at(&sy, (double)c->bleu[i]),
                at(&sx, (double)c->self_bleu[i + 1]), at(&sy, (double)c->bleu[i + 1]),
                COLORS[(size_t)c->series[i] % 8]);
    for (int32_t i = 0; i < c->n; i++) {
        if (!isfinite(c->self_bleu[i]) || !isfinite(c->bleu[i])) continue;
        double x = at(&sx, (double)c->self_bleu[i]), y = at(&sy, (double)c->bleu[i]);
        const char *color = COLORS[(size_t)(c->series ? c->series[i] : 0) % 8];
        put(&t, "<circle class=\"run\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x, y, color);
        if (c->label && c->label[i]) {
            put(&t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"%s\">", x - 6, y - 6,
                color);
            put_escaped(&t, c->label[i]);
            put(&t, "</text>");
        }
        put(&t, "\n");
    }
    put(&t, "</g>\n");
    if (isfinite(c->copy_ibleu))
        put(&t,
            "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" fill=\"#666\">dashed: the copy "
            "baseline's iBLEU (%.2f); above it beats copying</text>\n",
            R, T - 8, (double)c->copy_ibleu);
    put(&t, "</svg>\n");
    if (t.oom) {
        free(t.p);
        return plm_fail(err, PLM_ERR_NOMEM, "trade-off chart: out of memory");
    }
    *out = t.p;
    if (len) *len = t.n;
    return PLM_OK;
}
