/* Sums of squared differences and value extremes of image pairs: pixseq's fused CPU kernel
 * for MSE / PSNR (pixseq.metrics.pixel).
 *
 * One pass over both images gives the squared error and every image's minimum and maximum,
 * so the value-range check is exhaustive at no extra cost. Squares are summed several
 * lanes at a time: float32 ones over short float32 blocks and then in float64, float64
 * ones in float64, uint8 ones exactly in integers.
 *
 * The work comes in units: each image pair of `n` values (image i at a + i * stride, in
 * elements) is cut into runs of `chunk` values (the last one shorter), and unit u is run
 * u % parts of image u / parts, parts = ceil(n / chunk). A call does units [first, last),
 * so threads can share even a single large image; the cut depends only on n and chunk,
 * never on the thread count, so the results do not either. Unit u's results go into
 * column u of the (6, units) table out: out[r * units + u] for
 * r = [sum of squared differences, min a, max a, min b, max b, nonfinite]
 * (nonfinite: 1 when a value of either image is NaN or infinite, which makes the sum
 * NaN or infinite; the extremes are then meaningless). Rows, not columns, so that the
 * caller gets each quantity for all units as one contiguous vector; it combines an
 * image's runs in order.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));

/* Lane-wise min / max. NaN handling does not matter here: a NaN or infinite value also
 * makes the image's squared error NaN / inf, which is what flags it. */
#if defined(__AVX__)
#include <immintrin.h>
static inline v8f min8(v8f x, v8f m) { return (v8f)_mm256_min_ps((__m256)x, (__m256)m); }
static inline v8f max8(v8f x, v8f m) { return (v8f)_mm256_max_ps((__m256)x, (__m256)m); }
static inline v4d min4(v4d x, v4d m) { return (v4d)_mm256_min_pd((__m256d)x, (__m256d)m); }
static inline v4d max4(v4d x, v4d m) { return (v4d)_mm256_max_pd((__m256d)x, (__m256d)m); }
#else
/* x where it is below (above) m, else m: a lane mask selects, for either vector type. */
#define SELECT_LANES(VT, IT, name, op)                            \
    static inline VT name(VT x, VT m) {                           \
        IT keep = x op m;                                         \
        return (VT)(((IT)x & keep) | ((IT)m & ~keep));            \
    }
SELECT_LANES(v8f, v8i, min8, <)
SELECT_LANES(v8f, v8i, max8, >)
SELECT_LANES(v4d, v4i, min4, <)
SELECT_LANES(v4d, v4i, max4, >)
#endif

/* A unit's results into column u of the (6, units) table. */
static void finish(double sse, double lo_a, double hi_a, double lo_b, double hi_b, double *out, int64_t u,
                   int64_t units) {
    double row[6] = {sse, lo_a, hi_a, lo_b, hi_b, !isfinite(sse)};
    for (int r = 0; r < 6; r++) out[r * units + u] = row[r];
}

/* Eight float32 values widened to float64 and added into two accumulators. */
static inline void add_widened8(v8f q, v4d *s0, v4d *s1) {
#if defined(__AVX__)
    /* Spelled out: GCC's generic widening of half a vector took four 2-lane conversions. */
    *s0 += (v4d)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)q));
    *s1 += (v4d)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)q, 1));
#else
    *s0 += __builtin_convertvector((v4f){q[0], q[1], q[2], q[3]}, v4d);
    *s1 += __builtin_convertvector((v4f){q[4], q[5], q[6], q[7]}, v4d);
#endif
}

static inline void add4(v4d q, v4d *s0, v4d *s1) {
    (void)s1;
    *s0 += q;
}

/* DEFINE_SSE(T, VT, VL, SUFFIX, MIN, MAX, ADD_BLOCK) defines sse_SUFFIX for floating T
 * with VL-lane vectors VT. Differences and squares are formed in T, as PyTorch's eager
 * path forms them, summed in T over blocks of 256 values (float32: 16 per lane, ~1e-7
 * relative, unbiased) and the block sums in float64 (ADD_BLOCK): widening every float32
 * square instead was the bottleneck of the pass. */
#define DEFINE_SSE(T, VT, VL, SUFFIX, MIN, MAX, ADD_BLOCK)                                            \
    static void sse_##SUFFIX(const T *a, const T *b, int64_t n, double *out, int64_t u, int64_t units) { \
        VT lo_a, hi_a, lo_b, hi_b, zero;                                                            \
        for (int l = 0; l < VL; l++) {                                                              \
            lo_a[l] = lo_b[l] = INFINITY;                                                           \
            hi_a[l] = hi_b[l] = -INFINITY;                                                          \
            zero[l] = 0;                                                                            \
        }                                                                                           \
        v4d s0 = {0, 0, 0, 0}, s1 = s0;                                                             \
        int64_t i = 0;                                                                              \
        while (i + 2 * VL <= n) {                                                                   \
            VT q0 = zero, q1 = zero;                                                                \
            int64_t end = n - i >= 256 ? i + 256 : i + (n - i) / (2 * VL) * (2 * VL);               \
            for (; i < end; i += 2 * VL) {                                                          \
                VT x0, y0, x1, y1;                                                                  \
                memcpy(&x0, a + i, sizeof x0);                                                      \
                memcpy(&y0, b + i, sizeof y0);                                                      \
                memcpy(&x1, a + i + VL, sizeof x1);                                                 \
                memcpy(&y1, b + i + VL, sizeof y1);                                                 \
                VT d0 = x0 - y0, d1 = x1 - y1;                                                      \
                q0 += d0 * d0;                                                                      \
                q1 += d1 * d1;                                                                      \
                lo_a = MIN(x1, MIN(x0, lo_a));                                                      \
                hi_a = MAX(x1, MAX(x0, hi_a));                                                      \
                lo_b = MIN(y1, MIN(y0, lo_b));                                                      \
                hi_b = MAX(y1, MAX(y0, hi_b));                                                      \
            }                                                                                       \
            ADD_BLOCK(q0, &s0, &s1);                                                                \
            ADD_BLOCK(q1, &s0, &s1);                                                                \
        }                                                                                           \
        double sse = 0.0, la = INFINITY, ha = -INFINITY, lb = INFINITY, hb = -INFINITY;             \
        for (int l = 0; l < 4; l++) sse += s0[l] + s1[l];                                           \
        for (int l = 0; l < VL; l++) {                                                              \
            la = lo_a[l] < la ? lo_a[l] : la;                                                       \
            ha = hi_a[l] > ha ? hi_a[l] : ha;                                                       \
            lb = lo_b[l] < lb ? lo_b[l] : lb;                                                       \
            hb = hi_b[l] > hb ? hi_b[l] : hb;                                                       \
        }                                                                                           \
        for (; i < n; i++) {                                                                        \
            T d = a[i] - b[i];                                                                      \
            sse += (double)(d * d);                                                                 \
            la = a[i] < la ? a[i] : la;                                                             \
            ha = a[i] > ha ? a[i] : ha;                                                             \
            lb = b[i] < lb ? b[i] : lb;                                                             \
            hb = b[i] > hb ? b[i] : hb;                                                             \
        }                                                                                           \
        finish(sse, la, ha, lb, hb, out, u, units);                                                 \
    }

DEFINE_SSE(float, v8f, 8, f32, min8, max8, add_widened8)
DEFINE_SSE(double, v4d, 4, f64, min4, max4, add4)

/* uint8: exact. Blocks of 2^16 values keep 32-bit lane sums below 2^32 (2^16 * 255^2).
 * The squares and the extremes are two loops: each vectorises well on its own (int16
 * differences, multiply-add into int32 lanes; byte min / max), fused they did not. */
static void sse_u8(const uint8_t *a, const uint8_t *b, int64_t n, double *out, int64_t u, int64_t units) {
    uint64_t sse = 0;
    for (int64_t start = 0; start < n; start += 65536) {
        int64_t end = n - start < 65536 ? n : start + 65536;
        uint32_t block = 0;
        for (int64_t i = start; i < end; i++) {
            int16_t d = (int16_t)a[i] - (int16_t)b[i];
            block += (uint32_t)((int32_t)d * d);
        }
        sse += block;
    }
    uint8_t la = 255, ha = 0, lb = 255, hb = 0;
    for (int64_t i = 0; i < n; i++) {
        la = a[i] < la ? a[i] : la;
        ha = a[i] > ha ? a[i] : ha;
        lb = b[i] < lb ? b[i] : lb;
        hb = b[i] > hb ? b[i] : hb;
    }
    finish((double)sse, la, ha, lb, hb, out, u, units);
}

/* Units [first, last) of `count` image pairs (see the header) with kernel K on type T. */
#define DEFINE_ENTRY(T, K, NAME)                                                                          \
    void NAME(const T *a, const T *b, int64_t first, int64_t last, int64_t count, int64_t n, int64_t stride, \
              int64_t chunk, double *out) {                                                               \
        int64_t parts = (n + chunk - 1) / chunk;                                                          \
        for (int64_t u = first; u < last; u++) {                                                          \
            int64_t lo = (u % parts) * chunk, hi = lo + chunk < n ? lo + chunk : n;                       \
            int64_t at = (u / parts) * stride + lo;                                                       \
            K(a + at, b + at, hi - lo, out, u, count * parts);                                            \
        }                                                                                                 \
    }

DEFINE_ENTRY(float, sse_f32, pixseq_sse_f32)
DEFINE_ENTRY(double, sse_f64, pixseq_sse_f64)
DEFINE_ENTRY(uint8_t, sse_u8, pixseq_sse_u8)
