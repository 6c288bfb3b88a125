// The lookup-table activation y = a[i] + t b[i] on CPU, vectorised by hand.
//
// Built at run time by actlab/compress/_kernel.py. The reference is
// actlab.compress._fastpath.pwl_lookup on the tables PWLActivation._tables
// builds, and the results equal it bit for bit: the same float32 operations
// in the same order, and no fused multiply-add (the build passes
// -ffp-contract=off). From the knot values v (K per channel) on [lo, hi]:
//   a = v[:-1], b = diff(v), T = K - 1, inv_h = (1 / (hi - lo)) * T
// (as torch evaluates T / (hi - lo)), and per element
//   u = (x - lo) * inv_h;  f = min(max(floor(u), 0), T - 1);  t = u - f;
//   y = a[f] + t * b[f]
// max(NaN, 0) is 0 (as _mm*_max_ps returns its second operand), so a NaN input
// reads segment 0 and gives t = NaN, hence y = NaN.
//
// One binary serves every x86-64 CPU: the AVX2 and AVX-512 loops carry
// target attributes and are picked at run time with __builtin_cpu_supports.
// Narrow ATen headers keep the one-off build near 10 s instead of 30 s.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline
#define AVX2 __attribute__((target("avx2")))

namespace {

enum Isa : int64_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Runs of at least this many elements with one channel use broadcast
// constants; shorter runs (dense layers, small feature maps) give every lane
// its own channel through a period table instead.
constexpr int64_t kMinRun = 64;
constexpr int64_t kMaxPeriod = 1 << 16;
constexpr int64_t kGrain = 1 << 16;  // elements per parallel task

// A stretch of elements sharing one channel's tables of T segments.
struct Run {
  const float* a;
  const float* b;
  float lo, inv_h;
  int64_t T;
};

// Lanes with their own channel: per-position lo, inv_h and table offset c * T.
struct Lanes {
  const float* a;
  const float* b;
  const float* lo;
  const float* inv_h;
  const int32_t* base;
  int64_t T;
};

inline float one(float x, const float* a, const float* b, float lo, float inv_h, float last) {
  float u = (x - lo) * inv_h;
  float f = std::floor(u);
  f = f > 0.0f ? f : 0.0f;
  f = f < last ? f : last;
  int i = static_cast<int>(f);
  float t = u - f;
  return a[i] + t * b[i];
}

void run_scalar(const float* x, float* y, int64_t n, const Run& r) {
  const float last = static_cast<float>(r.T - 1);
  for (int64_t k = 0; k < n; ++k) y[k] = one(x[k], r.a, r.b, r.lo, r.inv_h, last);
}

void lanes_scalar(const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
  const float last = static_cast<float>(l.T - 1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t q = p + k;
    y[k] = one(x[k], l.a + l.base[q], l.b + l.base[q], l.lo[q], l.inv_h[q], last);
  }
}

#if defined(__x86_64__)  // elsewhere only the scalar loops are built

// ---- AVX2: 8 lanes, tables read by gathers, scalar tails ----

AVX2 void run_avx2(const float* x, float* y, int64_t n, const Run& r) {
  const __m256 lo = _mm256_set1_ps(r.lo), inv_h = _mm256_set1_ps(r.inv_h);
  const __m256 zero = _mm256_setzero_ps(), last = _mm256_set1_ps(static_cast<float>(r.T - 1));
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 u = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), lo), inv_h);
    __m256 f = _mm256_min_ps(_mm256_max_ps(_mm256_floor_ps(u), zero), last);
    __m256i i = _mm256_cvttps_epi32(f);
    __m256 t = _mm256_sub_ps(u, f);
    __m256 bt = _mm256_mul_ps(t, _mm256_i32gather_ps(r.b, i, 4));
    _mm256_storeu_ps(y + k, _mm256_add_ps(_mm256_i32gather_ps(r.a, i, 4), bt));
  }
  run_scalar(x + k, y + k, n - k, r);
}

AVX2 void lanes_avx2(const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
  const __m256 zero = _mm256_setzero_ps(), last = _mm256_set1_ps(static_cast<float>(l.T - 1));
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const int64_t q = p + k;
    __m256 u = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(l.lo + q)),
                             _mm256_loadu_ps(l.inv_h + q));
    __m256 f = _mm256_min_ps(_mm256_max_ps(_mm256_floor_ps(u), zero), last);
    __m256i j = _mm256_add_epi32(_mm256_cvttps_epi32(f),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l.base + q)));
    __m256 t = _mm256_sub_ps(u, f);
    __m256 bt = _mm256_mul_ps(t, _mm256_i32gather_ps(l.b, j, 4));
    _mm256_storeu_ps(y + k, _mm256_add_ps(_mm256_i32gather_ps(l.a, j, 4), bt));
  }
  lanes_scalar(x + k, y + k, n - k, l, p + k);
}

// ---- AVX-512: 16 lanes, masked tails; tables of up to 64 entries live in
// registers and are read by permutes, longer ones by gathers ----

// R registers of 16 entries per table; R = 0 means gather from memory.
template <int R>
AVX512_INLINE __m512 read(const __m512* tab, const float* mem, __m512i i) {
  if constexpr (R == 0) {
    return _mm512_i32gather_ps(i, mem, 4);
  } else if constexpr (R == 1) {
    return _mm512_permutexvar_ps(i, tab[0]);
  } else if constexpr (R == 2) {
    return _mm512_permutex2var_ps(tab[0], i, tab[1]);
  } else {  // permutex2var reads the low 5 index bits; bit 5 picks the upper pair
    __m512 low = _mm512_permutex2var_ps(tab[0], i, tab[1]);
    __m512 high = _mm512_permutex2var_ps(tab[2], i, tab[3]);
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(i, _mm512_set1_epi32(32)), low, high);
  }
}

AVX512_INLINE __mmask16 head(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// 16 elements; masked-off lanes load x = 0 and clamp to a valid segment, so every read stays in bounds.
template <int R>
AVX512_INLINE void run_vector(const float* x, float* y, __mmask16 m, const __m512* ta, const __m512* tb,
                              const Run& r, __m512 lo, __m512 inv_h, __m512 last) {
  __m512 u = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x), lo), inv_h);
  __m512 f = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  f = _mm512_min_ps(_mm512_max_ps(f, _mm512_setzero_ps()), last);
  __m512i i = _mm512_cvttps_epi32(f);
  __m512 bt = _mm512_mul_ps(_mm512_sub_ps(u, f), read<R>(tb, r.b, i));
  _mm512_mask_storeu_ps(y, m, _mm512_add_ps(read<R>(ta, r.a, i), bt));
}

template <int R>
AVX512 void run_avx512(const float* x, float* y, int64_t n, const Run& r) {
  __m512 ta[R > 0 ? R : 1], tb[R > 0 ? R : 1];
  for (int k = 0; k < R; ++k) {  // zero padding past T is never read: indices stop at T - 1
    const __mmask16 m = head(std::max<int64_t>(r.T - 16 * k, 0));
    ta[k] = m ? _mm512_maskz_loadu_ps(m, r.a + 16 * k) : _mm512_setzero_ps();
    tb[k] = m ? _mm512_maskz_loadu_ps(m, r.b + 16 * k) : _mm512_setzero_ps();
  }
  const __m512 lo = _mm512_set1_ps(r.lo), inv_h = _mm512_set1_ps(r.inv_h);
  const __m512 last = _mm512_set1_ps(static_cast<float>(r.T - 1));
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) run_vector<R>(x + k, y + k, 0xFFFF, ta, tb, r, lo, inv_h, last);
  if (k < n) run_vector<R>(x + k, y + k, head(n - k), ta, tb, r, lo, inv_h, last);
}

AVX512 void lanes_avx512(const float* x, float* y, int64_t n, const Lanes& l, int64_t p) {
  const __m512 zero = _mm512_setzero_ps(), last = _mm512_set1_ps(static_cast<float>(l.T - 1));
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 m = head(n - k);
    const int64_t q = p + k;
    __m512 u = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + k), _mm512_maskz_loadu_ps(m, l.lo + q)),
                             _mm512_maskz_loadu_ps(m, l.inv_h + q));
    __m512 f = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    f = _mm512_min_ps(_mm512_max_ps(f, zero), last);
    __m512i j = _mm512_add_epi32(_mm512_cvttps_epi32(f), _mm512_maskz_loadu_epi32(m, l.base + q));
    __m512 bt = _mm512_mul_ps(_mm512_sub_ps(u, f), _mm512_i32gather_ps(j, l.b, 4));
    _mm512_mask_storeu_ps(y + k, m, _mm512_add_ps(_mm512_i32gather_ps(j, l.a, 4), bt));
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
  if (isa == kAvx2) return run_avx2(x, y, n, r);
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

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
              name, " must be a contiguous float32 CPU tensor");
}

// x: float32 contiguous, channels along dim 1 when C > 1; values: (C, K); lo, hi: (C,).
// isa: -1 for the best the CPU has, else 0 scalar, 1 AVX2, 2 AVX-512 (for tests).
at::Tensor lookup(const at::Tensor& x, const at::Tensor& values, const at::Tensor& lo, const at::Tensor& hi,
                  int64_t isa) {
  check(x, "x");
  check(values, "values");
  check(lo, "lo");
  check(hi, "hi");
  TORCH_CHECK(values.dim() == 2 && values.size(1) >= 2, "values must be (C, K) with K >= 2");
  const int64_t C = values.size(0), K = values.size(1), T = K - 1;
  TORCH_CHECK(lo.numel() == C && hi.numel() == C, "lo and hi need one entry per table row");
  TORCH_CHECK(C == 1 || (x.dim() >= 2 && x.size(1) == C), "x needs ", C, " channels along dim 1");
  TORCH_CHECK(C * T < (int64_t{1} << 31), "tables too large for 32-bit indices");
  TORCH_CHECK(isa >= -1 && isa <= best_isa(), "isa ", isa, " is not supported by this CPU");
  isa = isa < 0 ? best_isa() : isa;

  at::Tensor out = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return out;
  // The tables, built here rather than by a handful of tiny torch ops per call.
  const float *vp = values.data_ptr<float>(), *lop = lo.data_ptr<float>(), *hip = hi.data_ptr<float>();
  std::vector<float> a(C * T), b(C * T), inv(C);
  for (int64_t c = 0; c < C; ++c) {
    inv[c] = (1.0f / (hip[c] - lop[c])) * static_cast<float>(T);
    for (int64_t i = 0; i < T; ++i) {
      a[c * T + i] = vp[c * K + i];
      b[c * T + i] = vp[c * K + i + 1] - vp[c * K + i];
    }
  }
  const int64_t inner = C == 1 ? n : n / (x.size(0) * C);
  const float *xp = x.data_ptr<float>(), *ap = a.data(), *bp = b.data(), *ivp = inv.data();
  float* yp = out.data_ptr<float>();

  if (C == 1 || inner >= kMinRun || C * inner > kMaxPeriod) {
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end;) {
        const int64_t row = e / inner, stop = std::min(end, (row + 1) * inner), c = row % C;
        run(isa, xp + e, yp + e, stop - e, Run{ap + c * T, bp + c * T, lop[c], ivp[c], T});
        e = stop;
      }
    });
    return out;
  }
  // The channel pattern repeats every C * inner elements; repeat it to at
  // least kMinRun lanes so that the vector loop runs over full registers.
  const int64_t period = C * inner, span = period * ((kMinRun + period - 1) / period);
  std::vector<float> plo(span), pinv(span);
  std::vector<int32_t> pbase(span);
  for (int64_t q = 0; q < span; ++q) {
    const int64_t c = (q / inner) % C;
    plo[q] = lop[c];
    pinv[q] = ivp[c];
    pbase[q] = static_cast<int32_t>(c * T);
  }
  const Lanes l{ap, bp, plo.data(), pinv.data(), pbase.data(), T};
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end;) {
      const int64_t p = e % span, stop = std::min(end, e + span - p);
      lanes(isa, xp + e, yp + e, stop - e, l, p);
      e = stop;
    }
  });
  return out;
}

// Shapes only, for torch.compile and torch.export tracing.
at::Tensor lookup_meta(const at::Tensor& x, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  return at::empty_like(x);
}

}  // namespace

TORCH_LIBRARY(actlab_pwl, m) {
  m.def("lookup(Tensor x, Tensor values, Tensor lo, Tensor hi, int isa=-1) -> Tensor");
  m.def("best_isa() -> int", &best_isa);
}

TORCH_LIBRARY_IMPL(actlab_pwl, CPU, m) { m.impl("lookup", &lookup); }
TORCH_LIBRARY_IMPL(actlab_pwl, Meta, m) { m.impl("lookup", &lookup_meta); }
