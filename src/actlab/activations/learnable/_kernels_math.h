// Vector maths of the slaf kernels (fourier's sin and cos, rbf's exp), on the vector
// types of _kernels.h: written so that NaN stays NaN, without -ffast-math.
#pragma once

#include "_kernels.h"

namespace actlab {

// Rounds to the nearest integer for |v| < 2^22 (adding 1.5 * 2^23 drops the fraction).
ACTLAB_INLINE vf round_small(vf v) { return (v + splat(12582912.f)) - splat(12582912.f); }

// The nearest integer (ties to even) for any float; inf and NaN stay as they are.
ACTLAB_INLINE vf round_nearest(vf z) {
#if defined(__AVX512F__)
  return (vf)_mm512_roundscale_ps((__m512)z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__AVX2__)
  return (vf)_mm256_round_ps((__m256)z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  return vselect((z < splat(4194304.f)) & (z > splat(-4194304.f)), round_small(z), z);  // beyond 2^22 z is whole
#endif
}

// sin and cos of z quarter turns (angle z * pi / 2): z - n is exact for the nearest
// integer n, so the reduction adds no error; Cephes' sinf/cosf polynomials on
// [-pi/4, pi/4]; the quadrant n mod 4 swaps and negates.
ACTLAB_INLINE void sincos_quarter(vf z, vf& s, vf& c) {
  const vf n = round_nearest(z);
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

// 2^y for |y| <= 126: y = n + f, |f| <= 1/2 exact, 2^f = 1 + f P(f) with Cephes exp2f's
// polynomial (coefficients c1..c6 of f^1..f^6 below), scaled by 2^n. NaN stays NaN.
constexpr float kExp2C[7] = {1.f, 6.931472028550421e-1f, 2.402264791363012e-1f, 5.550332471162809e-2f,
                             9.618437357674640e-3f, 1.339887440266574e-3f, 1.535336188319500e-4f};

ACTLAB_INLINE vf pow2i(vf n) {  // 2^n for whole n in [-126, 127]
  vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  vf r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

ACTLAB_INLINE vf vexp2(vf y) {
  const vf n = round_nearest(y), f = y - n;
  vf p = splat(kExp2C[6]);
  for (int i = 5; i >= 0; --i) p = p * f + kExp2C[i];
  return p * pow2i(n);
}

// 2^y and 2^-y for |y| <= 126 in one go, without a division: the even and odd parts of
// vexp2's polynomial give 2^(+-f) = E +- O, scaled by 2^(+-n).
ACTLAB_INLINE void vexp2_pair(vf y, vf& ep, vf& em) {
  const vf n = round_nearest(y), f = y - n, s = f * f;
  const vf e = ((splat(kExp2C[6]) * s + kExp2C[4]) * s + kExp2C[2]) * s + kExp2C[0];
  const vf o = (((splat(kExp2C[5]) * s + kExp2C[3]) * s + kExp2C[1])) * f;
  ep = (e + o) * pow2i(n);
  em = (e - o) * pow2i(-n);
}

// exp(x) for x <= 0; 0 below -87.3, where float32 turns denormal.
ACTLAB_INLINE vf exp_nonpos(vf x) {
  vf y = vexp_bounded(vselect(x < splat(-87.3f), splat(-87.3f), x));
  return vselect(x < splat(-87.3f), splat(0.f), y);
}

}  // namespace actlab
