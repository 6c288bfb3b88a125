// Vector maths of the slaf kernels (fourier's sin and cos, rbf's exp), on the vector
// types of _kernels.h: written so that NaN stays NaN, without -ffast-math.
#pragma once

#include "_kernels.h"

namespace actlab {

// Rounds to the nearest integer for |v| < 2^22 (adding 1.5 * 2^23 drops the fraction).
ACTLAB_INLINE vf round_small(vf v) { return (v + splat(12582912.f)) - splat(12582912.f); }

// sin and cos of z quarter turns (angle z * pi / 2): z - n is exact for the nearest
// integer n, so the reduction adds no error; Cephes' sinf/cosf polynomials on
// [-pi/4, pi/4]; the quadrant n mod 4 swaps and negates.
ACTLAB_INLINE void sincos_quarter(vf z, vf& s, vf& c) {
#if defined(__AVX512F__)
  vf n = (vf)_mm512_roundscale_ps((__m512)z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__AVX2__)
  vf n = (vf)_mm256_round_ps((__m256)z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  vf n = round_small(z);
  n = vselect((z < splat(4194304.f)) & (z > splat(-4194304.f)), n, z);  // beyond 2^22 z is whole
#endif
  vf t = (z - n) * splat(1.57079632679489662f);
  vf t2 = t * t;
  vf sp = t + t * t2 * (splat(-1.6666654611e-1f) + t2 * (splat(8.3321608736e-3f) + t2 * splat(-1.9515295891e-4f)));
  vf cp = splat(1.f) - splat(0.5f) * t2 +
          t2 * t2 * (splat(4.166664568298827e-2f) + t2 * (splat(-1.388731625493765e-3f) + t2 * splat(2.443315711809948e-5f)));
  // Quadrant q = n mod 4 (two's complement also for n < 0): odd q swaps sin and cos, and
  // the sign bits flip for sin at q = 2, 3 and for cos at q = 1, 2 (bit 1 of q, of q + 1).
  vi q = __builtin_convertvector(n, vi);
  vi odd = (q & 1) != 0;
  vf s0 = vselect(odd, cp, sp), c0 = vselect(odd, sp, cp);
  vi sb, cb;
  std::memcpy(&sb, &s0, sizeof sb);
  std::memcpy(&cb, &c0, sizeof cb);
  sb ^= (q & 2) << 30;
  cb ^= ((q + 1) & 2) << 30;
  std::memcpy(&s, &sb, sizeof s);
  std::memcpy(&c, &cb, sizeof c);
}

// exp(x) for |x| <= 80 (Cephes expf) without range checks; NaN stays NaN.
ACTLAB_INLINE vf vexp_bounded(vf x) {
  vf fx = round_small(x * splat(1.44269504088896341f));
  vf r = x - fx * splat(0.693359375f) - fx * splat(-2.12194440e-4f);
  vf y = splat(1.9875691500e-4f);
  y = y * r + splat(1.3981999507e-3f);
  y = y * r + splat(8.3334519073e-3f);
  y = y * r + splat(4.1665795894e-2f);
  y = y * r + splat(1.6666665459e-1f);
  y = y * r + splat(5.0000001201e-1f);
  y = y * r * r + r + splat(1.f);
  vi bits = (__builtin_convertvector(fx, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// exp(y) and exp(-y) for |y| <= 80 in one go, without a division: with y = n ln2 + r, the even and
// odd parts of exp(r)'s Taylor polynomial of degree 7 (error < 1e-8 for |r| <= ln2 / 2) give
// exp(+-r) = E +- O, scaled by 2^(+-n). NaN stays NaN.
ACTLAB_INLINE void vexp_pair(vf y, vf& ep, vf& em) {
  vf fx = round_small(y * splat(1.44269504088896341f));
  vf r = y - fx * splat(0.693359375f) - fx * splat(-2.12194440e-4f);
  vf s = r * r;
  vf e = splat(1.f) + s * (splat(0.5f) + s * (splat(1.f / 24) + s * splat(1.f / 720)));
  vf o = r * (splat(1.f) + s * (splat(1.f / 6) + s * (splat(1.f / 120) + s * splat(1.f / 5040))));
  vi n = __builtin_convertvector(fx, vi);
  vi bp = (n + 127) << 23, bm = (127 - n) << 23;
  vf sp, sm;
  std::memcpy(&sp, &bp, sizeof sp);
  std::memcpy(&sm, &bm, sizeof sm);
  ep = (e + o) * sp;
  em = (e - o) * sm;
}

// exp(x) for x <= 0; 0 below -87.3, where float32 turns denormal.
ACTLAB_INLINE vf exp_nonpos(vf x) {
  vf y = vexp_bounded(vselect(x < splat(-87.3f), splat(-87.3f), x));
  return vselect(x < splat(-87.3f), splat(0.f), y);
}

}  // namespace actlab
