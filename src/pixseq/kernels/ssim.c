/* SSIM and its contrast-structure term, one map pair at a time: pixseq's fused CPU kernel
 * for pixseq.metrics.ssim (Wang et al. 2004; see that module for the definitions).
 *
 * The four window statistics of the mean-shifted images (a, b, a^2 + b^2, ab; each image
 * shifted by its own mean, shift[2 m] and shift[2 m + 1] for map pair m) are formed
 * row by row, filtered along the row into a ring of k rows, filtered down the columns
 * straight into registers, turned into SSIM and cs values and summed -- no full-size
 * intermediate is ever written. The arithmetic is that of the PyTorch code, step for
 * step: 'valid' filters as chains of fused multiply-adds over the taps (ATen's
 * add(x, alpha=w)), the SSIM formula in the same order (so identical images score
 * exactly 1), in the caller's precision (float or double).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

#if defined(__FMA__)
#include <immintrin.h>
#define FMA_F(a, b, c) fmaf((a), (b), (c))
#define FMA_D(a, b, c) fma((a), (b), (c))
#define FMA_V8F(a, b, c) ((v8f)_mm256_fmadd_ps((__m256)(a), _mm256_set1_ps(b), (__m256)(c)))
#define FMA_V4D(a, b, c) ((v4d)_mm256_fmadd_pd((__m256d)(a), _mm256_set1_pd(b), (__m256d)(c)))
#else
#define FMA_F(a, b, c) ((a) * (b) + (c))
#define FMA_D(a, b, c) ((a) * (b) + (c))
#define FMA_V8F(a, b, c) ((a) * (b) + (c))
#define FMA_V4D(a, b, c) ((a) * (b) + (c))
#endif

#define PIXSEQ_SSIM_MAX_TAPS 64 /* the caller checks the window size */

/* Distance between ring rows: a power-of-two width would put the k rows of a column in
 * the same L1 cache sets (4 KiB aliasing) and make the column pass several times slower. */
static inline int64_t row_stride(int64_t w) { return w + 40; }

/* Doubles of scratch for maps of width w and a k-tap window (either precision). */
int64_t pixseq_ssim_work_size(int64_t w, int64_t k) { return (4 * k + 4) * row_stride(w) + 8; }

/* SSIM and cs from the four filtered statistics, the steps of _ssim_cs_maps; written once
 * for scalars and vectors (GCC / Clang vector extensions take the same operators). */
#define SSIM_CS(T, ma, mb, e_sq, e_ab, sha, shb, cov_norm, scale, c1, c2, ssim_out, cs_out) \
    do {                                                                                    \
        T var_sum_ = (e_sq) - ((ma) * (ma) + (mb) * (mb));                                  \
        T cov2_ = ((e_ab) - (ma) * (mb)) * 2;                                               \
        if (scale) {                                                                        \
            var_sum_ = var_sum_ * (cov_norm);                                               \
            cov2_ = cov2_ * (cov_norm);                                                     \
        }                                                                                   \
        T cs_ = (cov2_ + (c2)) / (var_sum_ + (c2));                                         \
        T a_ = (ma) + (sha), b_ = (mb) + (shb);                                             \
        T lum_ = ((a_ * b_) * 2 + (c1)) / ((a_ * a_ + b_ * b_) + (c1));                     \
        ssim_out = lum_ * cs_;                                                              \
        cs_out = cs_;                                                                       \
    } while (0)

/* DEFINE_SSIM defines pixseq_ssim_SUFFIX for element type T with vectors VT of VL lanes. */
#define DEFINE_SSIM(T, VT, VL, SUFFIX, FMA_S, FMA_V)                                                            \
    static inline VT load_##SUFFIX(const T *p) {                                                              \
        VT v;                                                                                                 \
        memcpy(&v, p, sizeof v);                                                                              \
        return v;                                                                                             \
    }                                                                                                         \
                                                                                                              \
    /* The statistics of one image row (w values each) filtered along it into the ring rows                  \
     * out[j * k * rs] (wo = w - k + 1 values each): a register accumulator per output, the                  \
     * taps in order: out = s[x] w0, then fma(s[x + t], wt, out). */                                          \
    static inline __attribute__((always_inline)) void row_taps_##SUFFIX(const T *stat, int64_t rs, int64_t wo,  \
                                                                         const T *taps, int64_t k, T *out,      \
                                                                         int64_t ring_step) {                   \
        for (int j = 0; j < 4; j++) {                                                                         \
            const T *s = stat + j * rs;                                                                       \
            T *o = out + j * ring_step;                                                                       \
            int64_t x = 0;                                                                                    \
            for (; x + VL <= wo; x += VL) {                                                                   \
                VT acc = load_##SUFFIX(s + x) * taps[0];                                                      \
                for (int64_t t = 1; t < k; t++) acc = FMA_V(load_##SUFFIX(s + x + t), taps[t], acc);          \
                memcpy(o + x, &acc, sizeof acc);                                                              \
            }                                                                                                 \
            for (; x < wo; x++) {                                                                             \
                T acc = s[x] * taps[0];                                                                       \
                for (int64_t t = 1; t < k; t++) acc = FMA_S(s[x + t], taps[t], acc);                          \
                o[x] = acc;                                                                                   \
            }                                                                                                 \
        }                                                                                                     \
    }                                                                                                         \
                                                                                                              \
    static inline __attribute__((always_inline)) void ssim_maps_##SUFFIX(                                    \
        const T *a, const T *b, int64_t maps, int64_t h, int64_t w, const double *taps_d, int64_t k,          \
        const double *shift, double cov_norm_d, const double *c1_d, const double *c2_d, double *out,          \
        double *work) {                                                                                       \
        const int64_t wo = w - k + 1, ho = h - k + 1, rs = row_stride(w);                                      \
        T taps[PIXSEQ_SSIM_MAX_TAPS];                                                                         \
        for (int64_t t = 0; t < k; t++) taps[t] = (T)taps_d[t];                                               \
        const T cov_norm = (T)cov_norm_d;                                                                     \
        const int scale = cov_norm != (T)1;                                                                   \
        T *ring = (T *)work;         /* stat j, input row y: ring + (j k + y % k) rs */                       \
        T *stat = ring + 4 * k * rs; /* the 4 statistics of the current row */                                \
        for (int64_t m = 0; m < maps; m++) {                                                                  \
            const T *am = a + m * h * w, *bm = b + m * h * w;                                                 \
            const T sha = (T)shift[2 * m], shb = (T)shift[2 * m + 1], c1 = (T)c1_d[m], c2 = (T)c2_d[m];     \
            double ssim_total = 0.0, cs_total = 0.0;                                                          \
            for (int64_t y = 0; y < h; y++) {                                                                 \
                T *sa = stat, *sb = stat + rs, *ssq = stat + 2 * rs, *sab = stat + 3 * rs;                     \
                for (int64_t x = 0; x < w; x++) {                                                             \
                    T u = am[y * w + x] - sha, v = bm[y * w + x] - shb;                                       \
                    sa[x] = u;                                                                                \
                    sb[x] = v;                                                                                \
                    ssq[x] = u * u + v * v;                                                                   \
                    sab[x] = u * v;                                                                           \
                }                                                                                             \
                row_taps_##SUFFIX(stat, rs, wo, taps, k, ring + (y % k) * rs, k * rs);                        \
                if (y < k - 1) continue;                                                                      \
                const T *rows[4][PIXSEQ_SSIM_MAX_TAPS]; /* the k ring rows of each statistic, in order */      \
                for (int j = 0; j < 4; j++)                                                                   \
                    for (int64_t t = 0; t < k; t++) rows[j][t] = ring + (j * k + (y - k + 1 + t) % k) * rs;   \
                VT ssim_acc = {0}, cs_acc = {0};                                                              \
                int64_t x = 0;                                                                                \
                for (; x + VL <= wo; x += VL) {                                                               \
                    VT f[4];                                                                                  \
                    for (int j = 0; j < 4; j++) {                                                             \
                        f[j] = load_##SUFFIX(rows[j][0] + x) * taps[0];                                       \
                        for (int64_t t = 1; t < k; t++) f[j] = FMA_V(load_##SUFFIX(rows[j][t] + x), taps[t], f[j]); \
                    }                                                                                         \
                    VT s_, c_;                                                                                \
                    SSIM_CS(VT, f[0], f[1], f[2], f[3], sha, shb, cov_norm, scale, c1, c2, s_, c_);           \
                    ssim_acc += s_;                                                                           \
                    cs_acc += c_;                                                                             \
                }                                                                                             \
                double ssim_row = 0.0, cs_row = 0.0;                                                          \
                for (int l = 0; l < VL; l++) {                                                                \
                    ssim_row += ssim_acc[l];                                                                  \
                    cs_row += cs_acc[l];                                                                      \
                }                                                                                             \
                for (; x < wo; x++) {                                                                         \
                    T f[4];                                                                                   \
                    for (int j = 0; j < 4; j++) {                                                             \
                        f[j] = rows[j][0][x] * taps[0];                                                       \
                        for (int64_t t = 1; t < k; t++) f[j] = FMA_S(rows[j][t][x], taps[t], f[j]);           \
                    }                                                                                         \
                    T s_, c_;                                                                                 \
                    SSIM_CS(T, f[0], f[1], f[2], f[3], sha, shb, cov_norm, scale, c1, c2, s_, c_);            \
                    ssim_row += s_;                                                                           \
                    cs_row += c_;                                                                             \
                }                                                                                             \
                ssim_total += ssim_row;                                                                       \
                cs_total += cs_row;                                                                           \
            }                                                                                                 \
            out[2 * m] = ssim_total / (double)(ho * wo);                                                      \
            out[2 * m + 1] = cs_total / (double)(ho * wo);                                                    \
        }                                                                                                     \
    }                                                                                                         \
                                                                                                              \
    /* out[2 m], out[2 m + 1] = mean SSIM and mean cs of map pair m of `maps` (h, w) pairs. The              \
     * standard 11-tap and the thesis 7-tap windows get code specialised for their size                       \
     * (unrolled tap loops: about 2x faster than a run-time size). */                                        \
    void pixseq_ssim_##SUFFIX(const T *a, const T *b, int64_t maps, int64_t h, int64_t w, const double *taps, \
                              int64_t k, const double *shift, double cov_norm, const double *c1,              \
                              const double *c2, double *out, double *work) {                                  \
        if (k == 11)                                                                                          \
            ssim_maps_##SUFFIX(a, b, maps, h, w, taps, 11, shift, cov_norm, c1, c2, out, work);               \
        else if (k == 7)                                                                                      \
            ssim_maps_##SUFFIX(a, b, maps, h, w, taps, 7, shift, cov_norm, c1, c2, out, work);                \
        else                                                                                                  \
            ssim_maps_##SUFFIX(a, b, maps, h, w, taps, k, shift, cov_norm, c1, c2, out, work);                \
    }

DEFINE_SSIM(float, v8f, 8, f32, FMA_F, FMA_V8F)
DEFINE_SSIM(double, v4d, 4, f64, FMA_D, FMA_V4D)
