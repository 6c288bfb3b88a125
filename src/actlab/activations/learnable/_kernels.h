// Shared machinery of the fused CPU kernels of slaf, spline, rational and subnet (_kernels_slaf.h/.cpp,
// _kernels_spline.h/.cpp, _kernels_spline_values.cpp, _kernels_rational.cpp, _kernels_subnet.cpp).
//
// Built at run time by actlab/activations/learnable/_kernels.py (see actlab/_cpp.py);
// the references are the PyTorch paths of _autograd*.py, which the tests compare
// against. Forward reads x once and writes y once; backward reads x and g once,
// writes grad_input and sums the parameter gradients on the way.
//
// Layout: x is contiguous and viewed as (outer, C, inner), parameters are per
// channel c (C = 1: one parameter set for any shape). The work is cut into fixed
// items of at most kItem elements of one channel, independent of the thread
// count, and each item writes its partial parameter gradients to its own row,
// summed in item order at the end: results do not depend on the threads.
// Within an item the sums run in float vectors for at most one run (<= kChunk
// elements) and are then added to per-lane doubles.
//
// SIMD: GCC vector extensions of width W, set by the target flags of the build
// (AVX-512: 16 lanes, AVX2: 8, otherwise 4); no -ffast-math, so NaN and inf
// propagate as in PyTorch: every clamp and relu is written so that a NaN input
// stays NaN.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <optional>
#include <vector>

#define ACTLAB_INLINE __attribute__((always_inline)) inline
// On a lambda handed to run(): GCC otherwise may call a large body once per vector.
#define ACTLAB_BODY __attribute__((always_inline))

namespace actlab {

#if defined(__AVX512F__)
constexpr int W = 16;
#elif defined(__AVX2__)
constexpr int W = 8;
#else
constexpr int W = 4;
#endif
typedef float vf __attribute__((vector_size(4 * W)));
typedef int32_t vi __attribute__((vector_size(4 * W)));

constexpr int64_t kItem = 16384;    // elements per work item
constexpr int64_t kChunk = 1024;    // longest run handed to a body; float sums last one run
constexpr int64_t kMinDirect = 64;  // shorter contiguous pieces are packed into a tile first
constexpr int kMaxTerms = 64;       // slaf terms / rational coefficients held on the stack

ACTLAB_INLINE vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
ACTLAB_INLINE void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
ACTLAB_INLINE vf splat(float s) {  // a broadcast: vf{} + s costs an add (0 + -0 is +0)
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(s);
#elif defined(__AVX2__)
  return (vf)_mm256_set1_ps(s);
#else
  return vf{} + s;
#endif
}
ACTLAB_INLINE vf vselect(vi m, vf a, vf b) { return m ? a : b; }
ACTLAB_INLINE vf clamp(vf z, float lo, float hi) {  // NaN stays NaN
  z = vselect(z < splat(lo), splat(lo), z);
  return vselect(z > splat(hi), splat(hi), z);
}
ACTLAB_INLINE vf pos(vf x) { return vselect(x < splat(0.f), splat(0.f), x); }  // relu, max(x, 0)
ACTLAB_INLINE vf neg(vf x) { return vselect(x > splat(0.f), splat(0.f), x); }  // min(x, 0)
ACTLAB_INLINE vf vabs(vf x) { return vselect(x < splat(0.f), -x, x); }
ACTLAB_INLINE bool any(vi m) {  // one test instruction, not a lane-by-lane OR
#if defined(__AVX512F__)
  return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif defined(__AVX2__)
  return !_mm256_testz_si256((__m256i)m, (__m256i)m);
#else
  int32_t r = 0;
  for (int j = 0; j < W; ++j) r |= m[j];
  return r != 0;
#endif
}

// Interleaves the low (high) halves of a and b: a0 b0 a1 b1 ... (a_{W/2} b_{W/2} ...).
ACTLAB_INLINE vi zip_mask(int first) {
  vi m;
  for (int j = 0; j < W; ++j) m[j] = first + j / 2 + (j % 2) * W;
  return m;
}
ACTLAB_INLINE vf zip_lo(vf a, vf b) { return __builtin_shuffle(a, b, zip_mask(0)); }
ACTLAB_INLINE vf zip_hi(vf a, vf b) { return __builtin_shuffle(a, b, zip_mask(W / 2)); }

// A table of up to kLutMax floats, looked up per lane. AVX-512 keeps it in
// registers and looks up with two-source permutes (on Zen 4 this made the
// spline forward about 3x faster than gathers); elsewhere it is a gather.
constexpr int kLutMax = 128;
struct Lut {
  alignas(64) float v[kLutMax];
  int chunks;  // of 32 entries
  void set(const float* src, int64_t n, int64_t stride) {
    std::memset(v, 0, sizeof v);
    for (int64_t i = 0; i < n; ++i) v[i] = src[i * stride];
    chunks = static_cast<int>((n + 31) / 32);
  }
  ACTLAB_INLINE vf operator()(vi idx) const {
#if defined(__AVX512F__)
    // One permute per 32 entries, then bits 5 and 6 of the index pick the result.
    const __m512i i = (__m512i)idx;
    __m512 r = _mm512_permutex2var_ps(_mm512_load_ps(v), i, _mm512_load_ps(v + 16));
    if (chunks == 1) return (vf)r;
    const __mmask16 b5 = _mm512_test_epi32_mask(i, _mm512_set1_epi32(32));
    r = _mm512_mask_mov_ps(r, b5, _mm512_permutex2var_ps(_mm512_load_ps(v + 32), i, _mm512_load_ps(v + 48)));
    if (chunks == 2) return (vf)r;
    __m512 r2 = _mm512_permutex2var_ps(_mm512_load_ps(v + 64), i, _mm512_load_ps(v + 80));
    if (chunks == 4)
      r2 = _mm512_mask_mov_ps(r2, b5, _mm512_permutex2var_ps(_mm512_load_ps(v + 96), i, _mm512_load_ps(v + 112)));
    return (vf)_mm512_mask_mov_ps(r, _mm512_test_epi32_mask(i, _mm512_set1_epi32(64)), r2);
#elif defined(__AVX2__)
    return (vf)_mm256_i32gather_ps(v, (__m256i)idx, 4);
#else
    vf r;
    for (int j = 0; j < W; ++j) r[j] = v[idx[j]];
    return r;
#endif
  }
};

// --------------------------------------------------------------- layout, items

struct View {  // x as (outer, C, inner); channel c's elements j = o * inner + i
  int64_t outer, C, inner;
  int64_t per_channel() const { return outer * inner; }
  int64_t offset(int64_t c, int64_t j) const { return ((j / inner) * C + c) * inner + j % inner; }
};

inline View view_of(const at::Tensor& x, int64_t C) {
  if (C == 1) return {1, 1, x.numel()};
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == C, "expected ", C, " channels on dim 1, got shape ", x.sizes());
  const int64_t outer = x.size(0);
  return {outer, C, outer * C ? x.numel() / (outer * C) : 0};
}

struct Item {
  int64_t c, j0, j1;
};

inline std::vector<Item> items_of(const View& v) {
  std::vector<Item> items;
  const int64_t per = v.per_channel();
  for (int64_t c = 0; c < v.C; ++c)
    for (int64_t j = 0; j < per; j += kItem) items.push_back({c, j, std::min(per, j + kItem)});
  return items;
}

// Calls f(x, g, y, n), 0 < n <= kChunk, on contiguous runs that cover the item;
// pieces shorter than kMinDirect (small feature maps, dense layers) are gathered
// into a tile and the results scattered back. g may be null (forward).
template <class F>
void visit(const View& v, const Item& it, const float* x, const float* g, float* y, F&& f) {
  alignas(64) float tx[kChunk], tg[kChunk], ty[kChunk];
  int64_t off[kChunk];
  int32_t len[kChunk];
  int64_t pieces = 0, filled = 0;
  auto flush = [&] {
    if (!filled) return;
    f(tx, g ? tg : nullptr, ty, filled);
    for (int64_t p = 0, at = 0; p < pieces; at += len[p], ++p) std::memcpy(y + off[p], ty + at, 4 * len[p]);
    pieces = filled = 0;
  };
  for (int64_t j = it.j0; j < it.j1;) {
    const int64_t n = std::min(v.inner - j % v.inner, it.j1 - j), o = v.offset(it.c, j);
    if (n >= kMinDirect) {
      for (int64_t s = 0; s < n; s += kChunk) {
        const int64_t m = std::min(kChunk, n - s);
        f(x + o + s, g ? g + o + s : nullptr, y + o + s, m);
      }
    } else {
      if (filled + n > kChunk) flush();
      std::memcpy(tx + filled, x + o, 4 * n);
      if (g) std::memcpy(tg + filled, g + o, 4 * n);
      off[pieces] = o;
      len[pieces++] = static_cast<int32_t>(n);
      filled += n;
    }
    j += n;
  }
  flush();
}

// Applies body(x, g, y, k) to blocks of U vectors (x, g in, y out) starting at
// element k = 0, UW, 2UW, ... < n; the last partial block is padded with zeros
// (x = 0 and g = 0 add nothing to any sum).
template <int U, class Body>
ACTLAB_INLINE void run(const float* x, const float* g, float* y, int64_t n, Body&& body) {
  vf xv[U], gv[U], yv[U];
  int64_t k = 0;
  for (; k + U * W <= n; k += U * W) {
    for (int u = 0; u < U; ++u) {
      xv[u] = load(x + k + u * W);
      gv[u] = g ? load(g + k + u * W) : vf{};
    }
    body(xv, gv, yv, k);
    for (int u = 0; u < U; ++u) store(y + k + u * W, yv[u]);
  }
  if (k < n) {
    alignas(64) float bx[U * W] = {}, bg[U * W] = {}, by[U * W];
    std::memcpy(bx, x + k, 4 * (n - k));
    if (g) std::memcpy(bg, g + k, 4 * (n - k));
    for (int u = 0; u < U; ++u) {
      xv[u] = load(bx + u * W);
      gv[u] = load(bg + u * W);
    }
    body(xv, gv, yv, k);
    for (int u = 0; u < U; ++u) store(by + u * W, yv[u]);
    std::memcpy(y + k, by, 4 * (n - k));
  }
}

// The sum over u < U of f(u), as a tree.
template <int U, class F>
ACTLAB_INLINE vf sum(F&& f) {
  if constexpr (U == 1) {
    return f(0);
  } else {
    vf h[U];
    for (int u = 0; u < U; ++u) h[u] = f(u);
    for (int width = U / 2; width >= 1; width /= 2)
      for (int u = 0; u < width; ++u) h[u] += h[u + width];
    return h[0];
  }
}

// Per-item sums: nacc float vectors, added into per-lane doubles after every run.
struct Sums {
  int nacc;
  vf v[kMaxTerms + 4];
  double d[(kMaxTerms + 4) * W];
  explicit Sums(int n) : nacc(n) {
    std::memset(v, 0, sizeof v);
    std::memset(d, 0, sizeof d);
  }
  void flush() {
    for (int k = 0; k < nacc; ++k) {
      for (int j = 0; j < W; ++j) d[k * W + j] += v[k][j];
      v[k] = vf{};
    }
  }
  void total(double* out) const {
    for (int k = 0; k < nacc; ++k) {
      double s = 0.0;
      for (int j = 0; j < W; ++j) s += d[k * W + j];
      out[k] = s;
    }
  }
};

// Runs fn(item, partial row) over all items in parallel, then sums the rows of
// each channel in item order into out (C, nacc).
template <class Fn>
void reduce_items(const View& v, int64_t nacc, double* out, Fn&& fn) {
  const std::vector<Item> items = items_of(v);
  std::vector<double> partial(items.size() * nacc, 0.0);
  at::parallel_for(0, static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(items[i], partial.data() + i * nacc);
  });
  std::fill(out, out + v.C * nacc, 0.0);
  for (size_t i = 0; i < items.size(); ++i)
    for (int64_t k = 0; k < nacc; ++k) out[items[i].c * nacc + k] += partial[i * nacc + k];
}

template <class Fn>
void for_items(const View& v, Fn&& fn) {
  const std::vector<Item> items = items_of(v);
  at::parallel_for(0, static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(items[i]);
  });
}

inline void check_float_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, name, " must be a float32 CPU tensor");
}

inline void check_grad(const at::Tensor& g, const at::Tensor& x) {
  check_float_cpu(g, "g");
  TORCH_CHECK(g.sizes() == x.sizes() && g.is_contiguous(), "g must be contiguous and shaped like x");
}

}  // namespace actlab
