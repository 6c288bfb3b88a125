// The lookup-table activation y = a[i] + t b[i] on CPU, vectorised by hand.
//
// Built at run time by actlab/compress/_kernel.py. The reference is
// actlab.compress._fastpath.pwl_lookup on the tables PWLActivation keeps as
// buffers, and the results equal it bit for bit: the same float32 operations
// in the same order, and no fused multiply-add (the build passes
// -ffp-contract=off). The module computes once, from the knot values v (K per
// channel) on [lo, hi]: a = v[:-1], b = diff(v), T = K - 1, inv_h = T / (hi - lo);
// per element the kernel computes
//   u = (x - lo) * inv_h;  f = min(max(floor(u), 0), T - 1);  t = u - f;
//   t = min(uc, max(lc, t));  y = a[f] + t * b[f]
// max(NaN, 0) is 0 (as _mm*_max_ps returns its second operand), so a NaN input
// reads segment 0 and gives t = NaN, hence y = NaN. lc and uc (per channel) are
// -inf and +inf, except -1 where the first segment is flat (b[0] = 0) and +1
// where the last is: a flat tail at x = +-inf is then a + 0, not a + 0 * inf
// (NaN); the clamps keep a NaN t (max and min return their second operand).
//
// One binary serves every x86-64 CPU: the AVX2 and AVX-512 loops carry
// target attributes and are picked at run time with __builtin_cpu_supports.
// Narrow ATen headers keep the one-off build near 10 s instead of 30 s.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/library.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <cmath>
#include <cstdint>
#include <vector>

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline
#define AVX2 __attribute__((target("avx2")))
#define AVX2_INLINE __attribute__((target("avx2"), always_inline)) inline

namespace {

enum Isa : int64_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Runs of at least this many elements with one channel use broadcast
// constants; shorter runs (dense layers, small feature maps) give every lane
// its own channel through a period table instead.
constexpr int64_t kMinRun = 64;
constexpr int64_t kMaxPeriod = 1 << 16;
constexpr int64_t kGrain = 1 << 16;  // elements per parallel task

// A stretch of elements sharing one channel's tables of T segments.
// One channel's tables, a block of 4T floats of the module's buffer `tab`:
// a (T), b (T), then both interleaved, ab = (a[0], b[0], a[1], b[1], ...), for
// gathers of 64-bit pairs.
struct Run {
  const float* a;
  const float* b;
  const float* ab;
  float lo, inv_h;
  int64_t T;
  int read;  // how the AVX2 loop reads the tables (Read)
  float lc, uc;  // t's clamps: +-1 on the side of a flat tail, else +-inf
};

// Lanes with their own channel: per-position lo, inv_h and table offset c * T.
// base[q]: where lane q's channel c starts in `tab`, in pairs: (2c + 1) T.
struct Lanes {
  const float* tab;
  int read;
  const float* lo;
  const float* inv_h;
  const int32_t* base;
  int64_t T;
  const float* lc;
  const float* uc;
};

inline float one(float x, const float* a, const float* b, float lo, float inv_h, float last, float lc, float uc) {
  float u = (x - lo) * inv_h;
  float f = std::floor(u);
  f = f > 0.0f ? f : 0.0f;
  f = f < last ? f : last;
  int i = static_cast<int>(f);
  float t = u - f;
  t = lc > t ? lc : t;  // a NaN t stays NaN
  t = uc < t ? uc : t;
  return a[i] + t * b[i];
}

void run_scalar(const float* x, float* y, int64_t n, const Run& r) {
  const float last = static_cast<float>(r.T - 1);
  for (int64_t k = 0; k < n; ++k) y[k] = one(x[k], r.a, r.b, r.lo, r.inv_h, last, r.lc, r.uc);
}

void lanes_scalar(const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
  const float last = static_cast<float>(l.T - 1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t q = p + k;
    const float* a = l.tab + 2 * (static_cast<int64_t>(l.base[q]) - l.T);
    y[k] = one(x[k], a, a + l.T, l.lo[q], l.inv_h[q], last, l.lc[q], l.uc[q]);
  }
}

#if defined(__x86_64__)  // elsewhere only the scalar loops are built

// ---- AVX2: 8 lanes. Three ways to read a[i] and b[i], all giving the same
// values; which is fastest depends on the CPU (gathers cost about 20 cycles
// on Zen 2 and 5 on recent Intel cores; permutes take one port on Intel), so
// it is measured once per process and table size (tune_avx2):
//  - kPermute, tables of up to 64 entries: vpermps picks 8 entries by the low 3
//    index bits from each of R registers, blends on bits 3, 4, 5 pick among them;
//  - kGather: two 8-float gathers;
//  - kPairs: two 4-element gathers of 64-bit (a, b) pairs, de-interleaved by
//    shuffles: half the gathered elements of kGather;
//  - kLoads: the same pairs by eight scalar 64-bit loads (CPUs whose gathers
//    are microcoded may load faster one by one). ----

enum Read : int { kPermute = 0, kGather = 1, kPairs = 2, kLoads = 3 };

// Bit k of every lane moved to the sign bit, which blendv reads.
AVX2_INLINE __m256 bit_mask(__m256i i, int k) {
  return _mm256_castsi256_ps(_mm256_sll_epi32(i, _mm_cvtsi32_si128(31 - k)));
}

template <int R>
AVX2_INLINE __m256 read8(const __m256* tab, __m256i i, const __m256* masks) {
  if constexpr (R == 1) {
    return _mm256_permutevar8x32_ps(tab[0], i);
  } else {
    constexpr int H = R / 2;  // the top index bit in use picks the upper or lower half of the registers
    return _mm256_blendv_ps(read8<H>(tab, i, masks), read8<H>(tab + H, i, masks),
                            masks[H == 1 ? 0 : H == 2 ? 1 : 2]);
  }
}

// a[i], b[i] from 64-bit pairs: the index lanes are reordered (0 1 4 5 | 2 3 6 7) so
// that the in-lane shuffles leave the values in element order.
AVX2_INLINE void read_pairs(const float* ab, __m256i i, __m256* a, __m256* b) {
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  const __m256i j = _mm256_permutevar8x32_epi32(i, order);
  const auto* base = reinterpret_cast<const long long*>(ab);
  const __m256 low = _mm256_castsi256_ps(_mm256_i32gather_epi64(base, _mm256_castsi256_si128(j), 8));
  const __m256 high = _mm256_castsi256_ps(_mm256_i32gather_epi64(base, _mm256_extracti128_si256(j, 1), 8));
  *a = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0));
  *b = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(3, 1, 3, 1));
}

// kPairs' result from eight plain loads, already in the order the shuffles need.
AVX2_INLINE void read_loads(const float* ab, __m256i i, __m256* a, __m256* b) {
  alignas(32) int32_t k[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(k), i);
  const double* p = reinterpret_cast<const double*>(ab);  // a pair read as one 64-bit value
  const __m256 low = _mm256_castpd_ps(_mm256_setr_pd(p[k[0]], p[k[1]], p[k[4]], p[k[5]]));
  const __m256 high = _mm256_castpd_ps(_mm256_setr_pd(p[k[2]], p[k[3]], p[k[6]], p[k[7]]));
  *a = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0));
  *b = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(3, 1, 3, 1));
}

template <int R, int S, bool Clamp>
AVX2_INLINE void run_vector8(const float* x, float* y, const __m256* ta, const __m256* tb, const Run& r,
                             __m256 lo, __m256 inv_h, __m256 last, __m256 lc, __m256 uc) {
  __m256 u = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x), lo), inv_h);
  // clamp, then truncate: the same segment as clamping floor(u), one instruction fewer
  __m256i i = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(u, _mm256_setzero_ps()), last));
  __m256 f = _mm256_cvtepi32_ps(i);
  __m256 va, vb;
  if constexpr (S == kPermute) {
    __m256 masks[3];
    if constexpr (R >= 2) masks[0] = bit_mask(i, 3);
    if constexpr (R >= 4) masks[1] = bit_mask(i, 4);
    if constexpr (R >= 8) masks[2] = bit_mask(i, 5);
    va = read8<R>(ta, i, masks);
    vb = read8<R>(tb, i, masks);
  } else if constexpr (S == kGather) {
    va = _mm256_i32gather_ps(r.a, i, 4);
    vb = _mm256_i32gather_ps(r.b, i, 4);
  } else if constexpr (S == kPairs) {
    read_pairs(r.ab, i, &va, &vb);
  } else {
    read_loads(r.ab, i, &va, &vb);
  }
  __m256 t = _mm256_sub_ps(u, f);
  if constexpr (Clamp) t = _mm256_min_ps(uc, _mm256_max_ps(lc, t));
  _mm256_storeu_ps(y, _mm256_add_ps(va, _mm256_mul_ps(t, vb)));
}

// Clamp: the table has a flat tail (lc or uc finite). A template flag, not two more
// constants in every loop: tables of up to 64 entries already hold 16 of AVX2's 16 registers.
template <int R, int S, bool Clamp>
AVX2 void run_avx2(const float* x, float* y, int64_t n, const Run& r) {
  __m256 ta[R], tb[R];
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int k = 0; k < (S == kPermute ? R : 0); ++k) {  // masked loads: zeros past T, never read
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r.T - 8 * k)), lane);
    ta[k] = _mm256_maskload_ps(r.a + 8 * k, m);
    tb[k] = _mm256_maskload_ps(r.b + 8 * k, m);
  }
  const __m256 lo = _mm256_set1_ps(r.lo), inv_h = _mm256_set1_ps(r.inv_h);
  const __m256 last = _mm256_set1_ps(static_cast<float>(r.T - 1));
  const __m256 lc = _mm256_set1_ps(r.lc), uc = _mm256_set1_ps(r.uc);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {  // two vectors per step: their gathers overlap
    run_vector8<R, S, Clamp>(x + k, y + k, ta, tb, r, lo, inv_h, last, lc, uc);
    run_vector8<R, S, Clamp>(x + k + 8, y + k + 8, ta, tb, r, lo, inv_h, last, lc, uc);
  }
  for (; k + 8 <= n; k += 8) run_vector8<R, S, Clamp>(x + k, y + k, ta, tb, r, lo, inv_h, last, lc, uc);
  if (k < n) {  // the tail through a zero-padded buffer (x = 0 reads a valid segment)
    float xs[8] = {0}, ys[8];
    std::copy(x + k, x + n, xs);
    run_vector8<R, S, Clamp>(xs, ys, ta, tb, r, lo, inv_h, last, lc, uc);
    std::copy(ys, ys + (n - k), y + k);
  }
}

template <bool Clamp>
void run_avx2_reads(const float* x, float* y, int64_t n, const Run& r) {
  if (r.read == kGather) return run_avx2<1, kGather, Clamp>(x, y, n, r);
  if (r.read == kLoads) return run_avx2<1, kLoads, Clamp>(x, y, n, r);
  if (r.read == kPairs || r.T > 64) return run_avx2<1, kPairs, Clamp>(x, y, n, r);
  if (r.T <= 8) return run_avx2<1, kPermute, Clamp>(x, y, n, r);
  if (r.T <= 16) return run_avx2<2, kPermute, Clamp>(x, y, n, r);
  if (r.T <= 32) return run_avx2<4, kPermute, Clamp>(x, y, n, r);
  return run_avx2<8, kPermute, Clamp>(x, y, n, r);
}

void run_avx2_any(const float* x, float* y, int64_t n, const Run& r) {
  if (r.lc == -INFINITY && r.uc == INFINITY) return run_avx2_reads<false>(x, y, n, r);
  run_avx2_reads<true>(x, y, n, r);
}

AVX2 void lanes_avx2(const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
  const __m256 zero = _mm256_setzero_ps(), last = _mm256_set1_ps(static_cast<float>(l.T - 1));
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const int64_t q = p + k;
    __m256 u = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(l.lo + q)),
                             _mm256_loadu_ps(l.inv_h + q));
    __m256i i = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(u, zero), last));
    __m256 f = _mm256_cvtepi32_ps(i);
    __m256i j = _mm256_add_epi32(i,
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l.base + q)));
    __m256 va, vb;
    read_pairs(l.tab, j, &va, &vb);
    const __m256 t = _mm256_min_ps(_mm256_loadu_ps(l.uc + q), _mm256_max_ps(_mm256_loadu_ps(l.lc + q), _mm256_sub_ps(u, f)));
    _mm256_storeu_ps(y + k, _mm256_add_ps(va, _mm256_mul_ps(t, vb)));
  }
  lanes_scalar(x + k, y + k, n - k, l, p + k);
}

// The fastest read for tables of T segments on this CPU, timed once per size
// class (T <= 8, 16, 32, 64, longer) on 16K elements, best of 5 runs each.
// A read forced for the process (benchmarks, tests): -1 none, else a Read.
std::atomic<int> g_forced_read{-1};

int tune_avx2(int64_t T) {
  static std::atomic<int> chosen[5] = {-1, -1, -1, -1, -1};
  static std::mutex mutex;
  const int cls = T <= 8 ? 0 : T <= 16 ? 1 : T <= 32 ? 2 : T <= 64 ? 3 : 4;
  const int forced = g_forced_read.load(std::memory_order_relaxed);
  if (forced >= 0 && (forced != kPermute || cls < 4)) return forced;
  if (chosen[cls] >= 0) return chosen[cls];
  std::lock_guard<std::mutex> hold(mutex);
  if (chosen[cls] >= 0) return chosen[cls];
  const int64_t size = cls < 4 ? (int64_t{8} << cls) : 128, n = 1 << 14;
  std::vector<float> tab(4 * size), x(n), y(n);
  for (int64_t i = 0; i < size; ++i) {
    tab[i] = tab[2 * size + 2 * i] = 0.5f * i;
    tab[size + i] = tab[2 * size + 2 * i + 1] = 0.5f;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7919) % (size * 16)) / 16.0f;
  int best = kGather;
  double best_t = 1e30;
  for (int read : {kPermute, kGather, kPairs, kLoads}) {
    if (read == kPermute && cls == 4) continue;
    const Run r{tab.data(), tab.data() + size, tab.data() + 2 * size, 0.0f, 1.0f, size, read, -INFINITY, INFINITY};
    double t = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      run_avx2_any(x.data(), y.data(), n, r);
      t = std::min(t, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    if (t < best_t) best_t = t, best = read;
  }
  chosen[cls] = best;
  return best;
}

// ---- AVX-512: 16 lanes, masked tails; tables of up to 64 entries live in
// registers and are read by permutes, longer ones by gathers of (a, b) pairs ----

// R registers of 16 entries per table.
template <int R>
AVX512_INLINE __m512 read(const __m512* tab, __m512i i) {
  if constexpr (R == 1) {
    return _mm512_permutexvar_ps(i, tab[0]);
  } else if constexpr (R == 2) {
    return _mm512_permutex2var_ps(tab[0], i, tab[1]);
  } else {  // permutex2var reads the low 5 index bits; bit 5 picks the upper pair
    __m512 low = _mm512_permutex2var_ps(tab[0], i, tab[1]);
    __m512 high = _mm512_permutex2var_ps(tab[2], i, tab[3]);
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(i, _mm512_set1_epi32(32)), low, high);
  }
}

// a[i], b[i] by two gathers of 8 64-bit (a, b) pairs, de-interleaved by two permutes.
AVX512_INLINE void read_pairs16(const float* ab, __m512i i, __m512* a, __m512* b) {
  const __m512 low = _mm512_castsi512_ps(_mm512_i32gather_epi64(_mm512_castsi512_si256(i), ab, 8));
  const __m512 high = _mm512_castsi512_ps(_mm512_i32gather_epi64(_mm512_extracti64x4_epi64(i, 1), ab, 8));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  *a = _mm512_permutex2var_ps(low, even, high);
  *b = _mm512_permutex2var_ps(low, _mm512_add_epi32(even, _mm512_set1_epi32(1)), high);
}

// The segment of u, as index and as float: clamp, then truncate (the same as
// clamping floor(u), one instruction fewer); max(NaN, 0) is 0.
AVX512_INLINE __m512i segment(__m512 u, __m512 last, __m512* f) {
  const __m512i i = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(u, _mm512_setzero_ps()), last));
  *f = _mm512_cvtepi32_ps(i);
  return i;
}

AVX512_INLINE __mmask16 head(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// 16 elements; masked-off lanes load x = 0 and clamp to a valid segment, so every read stays in bounds.
// R = 0: pairs gathered from memory.
template <int R>
AVX512_INLINE void run_vector(const float* x, float* y, __mmask16 m, const __m512* ta, const __m512* tb,
                              const Run& r, __m512 lo, __m512 inv_h, __m512 last, __m512 lc, __m512 uc) {
  __m512 u = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x), lo), inv_h);
  __m512 f, va, vb;
  __m512i i = segment(u, last, &f);
  if constexpr (R == 0) {
    read_pairs16(r.ab, i, &va, &vb);
  } else {
    va = read<R>(ta, i);
    vb = read<R>(tb, i);
  }
  const __m512 t = _mm512_min_ps(uc, _mm512_max_ps(lc, _mm512_sub_ps(u, f)));
  _mm512_mask_storeu_ps(y, m, _mm512_add_ps(va, _mm512_mul_ps(t, vb)));
}

template <int R>
AVX512 void run_avx512(const float* x, float* y, int64_t n, const Run& r) {
  __m512 ta[R > 0 ? R : 1], tb[R > 0 ? R : 1];
  for (int k = 0; k < R; ++k) {  // masked loads: zeros past T, never read (indices stop at T - 1)
    const __mmask16 m = head(std::max<int64_t>(r.T - 16 * k, 0));
    ta[k] = _mm512_maskz_loadu_ps(m, r.a + 16 * k);
    tb[k] = _mm512_maskz_loadu_ps(m, r.b + 16 * k);
  }
  const __m512 lo = _mm512_set1_ps(r.lo), inv_h = _mm512_set1_ps(r.inv_h);
  const __m512 last = _mm512_set1_ps(static_cast<float>(r.T - 1));
  const __m512 lc = _mm512_set1_ps(r.lc), uc = _mm512_set1_ps(r.uc);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) run_vector<R>(x + k, y + k, 0xFFFF, ta, tb, r, lo, inv_h, last, lc, uc);
  if (k < n) run_vector<R>(x + k, y + k, head(n - k), ta, tb, r, lo, inv_h, last, lc, uc);
}

AVX512 void lanes_avx512(const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
  const __m512 last = _mm512_set1_ps(static_cast<float>(l.T - 1));
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 m = head(n - k);
    const int64_t q = p + k;
    __m512 u = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + k), _mm512_maskz_loadu_ps(m, l.lo + q)),
                             _mm512_maskz_loadu_ps(m, l.inv_h + q));
    __m512 f, va, vb;
    __m512i j = _mm512_add_epi32(segment(u, last, &f), _mm512_maskz_loadu_epi32(m, l.base + q));
    read_pairs16(l.tab, j, &va, &vb);
    const __m512 t = _mm512_min_ps(_mm512_maskz_loadu_ps(m, l.uc + q),
                                   _mm512_max_ps(_mm512_maskz_loadu_ps(m, l.lc + q), _mm512_sub_ps(u, f)));
    _mm512_mask_storeu_ps(y + k, m, _mm512_add_ps(va, _mm512_mul_ps(t, vb)));
  }
}

#endif  // __x86_64__

// ---- dispatch ----

int64_t best_isa() {
#if defined(__x86_64__)
  static const int64_t isa = __builtin_cpu_supports("avx512f") ? kAvx512
                             : __builtin_cpu_supports("avx2")  ? kAvx2
                                                               : kScalar;
  return isa;
#else
  return kScalar;
#endif
}

void run(int64_t isa, const float* x, float* y, int64_t n, const Run& r) {
#if defined(__x86_64__)
  if (isa == kAvx512) {
    if (r.T <= 16) return run_avx512<1>(x, y, n, r);
    if (r.T <= 32) return run_avx512<2>(x, y, n, r);
    if (r.T <= 64) return run_avx512<4>(x, y, n, r);
    return run_avx512<0>(x, y, n, r);
  }
  if (isa == kAvx2) return run_avx2_any(x, y, n, r);
#endif
  run_scalar(x, y, n, r);
}

void lanes(int64_t isa, const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
#if defined(__x86_64__)
  if (isa == kAvx512) return lanes_avx512(x, y, n, l, p);
  if (isa == kAvx2) return lanes_avx2(x, y, n, l, p);
#endif
  lanes_scalar(x, y, n, l, p);
}

// The ISA every call uses: the best the CPU has unless narrowed by set_isa
// (benchmarks force AVX2 on an AVX-512 CPU; tests run every path).
int64_t g_isa = -1;

int64_t current_isa() { return g_isa < 0 ? best_isa() : g_isa; }

void set_isa(int64_t isa) {
  TORCH_CHECK(isa >= -1 && isa <= best_isa(), "isa ", isa, " is not supported by this CPU");
  g_isa = isa;
}

bool is_f32(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
}

// Why the kernel cannot take these arguments, or nullptr.
const char* unsupported(const at::Tensor& x, const at::Tensor& tab, const at::Tensor& lo, const at::Tensor& inv_h) {
  if (!is_f32(x)) return "x must be a contiguous float32 CPU tensor";
  if (!is_f32(tab) || !is_f32(lo) || !is_f32(inv_h)) return "tables must be contiguous float32 CPU tensors";
  if (tab.dim() != 2 || tab.size(1) < 4 || tab.size(1) % 4 != 0) return "tab must be (C, 4T)";
  const int64_t C = tab.size(0);
  if (lo.numel() != C || inv_h.numel() != C) return "lo and inv_h need one entry per table row";
  if (C != 1 && (x.dim() < 2 || x.size(1) != C)) return "x needs the tables' channels along dim 1";
  if (C * tab.size(1) >= (int64_t{1} << 31)) return "tables too large for 32-bit indices";
  return nullptr;
}

// t's clamps for a channel's slopes b (T): +-1 beside a flat tail, else +-inf (no clamp).
float lower_clamp(const float* b) { return b[0] == 0.0f ? -1.0f : -INFINITY; }
float upper_clamp(const float* b, int64_t T) { return b[T - 1] == 0.0f ? 1.0f : INFINITY; }

at::Tensor lookup_impl(const at::Tensor& x, const at::Tensor& tab, const at::Tensor& lo, const at::Tensor& inv_h,
                       int64_t isa) {
  at::Tensor out = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return out;
  const int64_t C = tab.size(0), T = tab.size(1) / 4;
  const int64_t inner = C == 1 ? n : n / (x.size(0) * C);
  const float *xp = x.data_ptr<float>(), *tp = tab.data_ptr<float>();
  const float *lop = lo.data_ptr<float>(), *ivp = inv_h.data_ptr<float>();
  float* yp = out.data_ptr<float>();
#if defined(__x86_64__)
  const int read = isa == kAvx2 ? tune_avx2(C == 1 || inner >= kMinRun ? T : int64_t{1} << 20) : kGather;
#else
  const int read = 0;
#endif

  if (C == 1 || inner >= kMinRun || C * inner > kMaxPeriod) {
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end;) {
        const int64_t row = e / inner, stop = std::min(end, (row + 1) * inner), c = row % C;
        const float* a = tp + 4 * c * T;
        run(isa, xp + e, yp + e, stop - e,
            Run{a, a + T, a + 2 * T, lop[c], ivp[c], T, read, lower_clamp(a + T), upper_clamp(a + T, T)});
        e = stop;
      }
    };
    if (n <= kGrain) body(0, n);  // small tensors: no trip through the thread pool
    else at::parallel_for(0, n, kGrain, body);
    return out;
  }
  // The channel pattern repeats every C * inner elements; repeat it to at
  // least kMinRun lanes so that the vector loop runs over full registers.
  const int64_t period = C * inner, span = period * ((kMinRun + period - 1) / period);
  std::vector<float> plo(span), pinv(span), plc(span), puc(span);
  std::vector<int32_t> pbase(span);
  for (int64_t q = 0; q < span; ++q) {
    const int64_t c = (q / inner) % C;
    plo[q] = lop[c];
    pinv[q] = ivp[c];
    plc[q] = lower_clamp(tp + 4 * c * T + T);
    puc[q] = upper_clamp(tp + 4 * c * T + T, T);
    pbase[q] = static_cast<int32_t>((2 * c + 1) * T);
  }
  const Lanes l{tp, read, plo.data(), pinv.data(), pbase.data(), T, plc.data(), puc.data()};
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end;) {
      const int64_t p = e % span, stop = std::min(end, e + span - p);
      lanes(isa, xp + e, yp + e, stop - e, l, p);
      e = stop;
    }
  };
  if (n <= kGrain) body(0, n);
  else at::parallel_for(0, n, kGrain, body);
  return out;
}

// The operator: x with channels along dim 1 when C > 1; tab (C, 4T) holds per
// channel a = values[:-1], b = diff(values), then a and b interleaved; lo and
// inv_h = T / (hi - lo) per channel. isa: -1 for the process setting, else 0 scalar, 1 AVX2, 2 AVX-512.
at::Tensor lookup(const at::Tensor& x, const at::Tensor& tab, const at::Tensor& lo, const at::Tensor& inv_h,
                  int64_t isa) {
  const char* why = unsupported(x, tab, lo, inv_h);
  TORCH_CHECK(why == nullptr, why);
  TORCH_CHECK(isa >= -1 && isa <= best_isa(), "isa ", isa, " is not supported by this CPU");
  return lookup_impl(x, tab, lo, inv_h, isa < 0 ? current_isa() : isa);
}

// The eager fast path as a plain Python function: no dispatcher, and None
// (not an error) when the kernel does not take the input, so the caller
// falls back to the reference formula.
c10::optional<at::Tensor> try_lookup(const at::Tensor& x, const at::Tensor& tab, const at::Tensor& lo,
                                     const at::Tensor& inv_h) {
  if (unsupported(x, tab, lo, inv_h) != nullptr) return c10::nullopt;
  return lookup_impl(x, tab, lo, inv_h, current_isa());
}

void force_avx2_read(int64_t read) {
  TORCH_CHECK(read >= -1 && read <= kLoads, "read must be -1 (tuned) or 0..3, got ", read);
#if defined(__x86_64__)
  g_forced_read = static_cast<int>(read);
#endif
}

// How the AVX2 loop reads tables of T segments here (tuned or forced): 0 permute, 1 gather, 2 pairs, 3 loads.
int64_t avx2_read(int64_t T) {
#if defined(__x86_64__)
  if (best_isa() >= kAvx2) return tune_avx2(T);
#endif
  return -1;
}

// Shapes only, for torch.compile and torch.export tracing.
at::Tensor lookup_meta(const at::Tensor& x, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  return at::empty_like(x);
}

}  // namespace

TORCH_LIBRARY(actlab_pwl, m) {
  m.def("lookup(Tensor x, Tensor tab, Tensor lo, Tensor inv_h, int isa=-1) -> Tensor");
}

TORCH_LIBRARY_IMPL(actlab_pwl, CPU, m) { m.impl("lookup", &lookup); }
TORCH_LIBRARY_IMPL(actlab_pwl, Meta, m) { m.impl("lookup", &lookup_meta); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("try_lookup", &try_lookup, "the table at x, or None when the kernel does not take these tensors");
  m.def("best_isa", &best_isa, "0 scalar, 1 AVX2, 2 AVX-512: the best this CPU has");
  m.def("current_isa", &current_isa, "the ISA calls use now");
  m.def("set_isa", &set_isa, "narrow the ISA for this process (-1: the best)");
  m.def("force_avx2_read", &force_avx2_read, "force how AVX2 reads tables (-1: tuned per CPU)");
  m.def("avx2_read", &avx2_read, "how AVX2 reads tables of T segments: 0 permute, 1 gather, 2 pairs, 3 loads");
}
