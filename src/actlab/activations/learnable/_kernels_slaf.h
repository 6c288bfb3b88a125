// The slaf kernels' per-element maths (struct Slaf), included by _kernels_slaf.cpp, which
// holds the arguments and the operators.
//
// slaf: f(x) = sum_k a_k phi_k(z) + tails [+ w relu(x)], z = x * inv_range (see slaf.py).
//
// Python passes kind 0 for the three-term bases, phi_0 = 1, phi_1 = a0 z,
// phi_{k+1} = al_k z phi_k - ga_k phi_{k-1}, rec = [a0, al_1, ga_1, al_2, ga_2, ...],
// evaluated at zc = clamp(z, -1, 1). The kernels use the same polynomials made
// monic, psi_k = phi_k / h_k with h_{k+1} = al_k h_k: psi_{k+1} = zc psi_k - be_k psi_{k-1},
// be_k = ga_k h_{k-1} / h_{k+1}, and coefficients a_k h_k, so that a step costs two
// operations (Clenshaw's rule forward); with every be_k = 0 (monomials) psi_k = zc^k
// and forward and derivative are Horner's rule.
// kind 1: fourier 1, cos(pi k z / 2), sin(pi k z / 2); periodic, no clamp, no tails; harmonic
// k > 1 from k - 1 and k - 2 by Chebyshev's recurrence (error growing about linearly in k).
// kind 2: rbf exp(-((zc - c_k) / width)^2), rec = [width, c_0, c_1, ...]. With K <= kRbfRatiosMax
// the kernels take an exp and a pair exp(+-y) (_kernels_math.h, in base 2) per element, not K
// exps: with t = (zc - c_mid) / width at the middle centre (centres one width apart),
// phi_{mid+j} = q up^j e^(-j(j-1)) and phi_{mid-j} = q dn^j e^(-j(j+1)), q = exp(-t^2),
// up = exp(2t - 1), dn = exp(-(2t - 1)). The forward sums both sides by Horner's rule in up and
// dn with coefficients rb_k = a_k rbf_factor(k); the backward sums g q up^j (g q dn^j) per term
// and leaves the factors to the caller (in double). No value on the way is below
// e^(-(K-1)^2) (times g), above float32's smallest normal for K <= 10, or above e^(j(j+1)) <= e^20,
// so none turns denormal (slow) or overflows.
// All but fourier continue linearly beyond [-1, 1]: + (z - zc) p'(+-1), p'(+-1) = a . dends[+-].
// Hybrid adds w relu(x); beyond the range as part of the upper tail (slope + w range, and
// relu(min(x, range))), as the reference does, so that x = +inf meets no inf - inf.
#pragma once

#include "_kernels_math.h"

namespace actlab {
namespace {

enum Kind { kThreeTerm = 0, kFourier = 1, kRbf = 2, kPower = 3, kRbfRatios = 4 };
constexpr int kRbfRatiosMax = 10;  // see above
constexpr double kSqrtLog2E = 1.2011224087864498;  // sqrt(log2 e)
constexpr float kLog2E = 1.44269504088896341f;

// rbf by ratios: the factor of term k (mid = (K - 1) / 2) that the sums leave out, e^(-j(j-1))
// above mid (up = exp(2t - 1)) and e^(-j(j+1)) below, j = |k - mid| (dn = exp(-(2t - 1)),
// so e^-2 dn is the true ratio exp(-2t - 1)).
inline double rbf_factor(int k, int K) {
  const int d = k - (K - 1) / 2, j = d > 0 ? d : -d;
  return std::exp(-static_cast<double>(d > 0 ? j * (j - 1) : j * (j + 1)));
}
constexpr int kFwdBlock = 4;  // vectors per step; the backward keeps more live, and Horner's
// (power) backward ran 11 % faster on one vector per step than on two (AVX2, K = 5)
constexpr int bwd_block(int kind) { return kind == kPower ? 1 : 2; }

// U independent vectors go through every step together, so that the latency of
// one vector's chain hides behind the others' (the loop over k is short).
#define EACH for (int u = 0; u < U; ++u)
// Loops over the terms unroll fully where K is fixed (KF > 0), so that the sums stay in registers.
#define KLOOP _Pragma("GCC unroll 16")

struct Slaf {
  int nk;  // terms; the methods take it as K, fixed at compile time where KF > 0
  float inv_r, inv_w, dscale, s_lo, s_hi, w, r_max;
  float lc, uc;  // the excess's clamps: -1 / +1 beside a flat tail (slope 0), else -inf / +inf
  bool hybrid, flat;
  float a[kMaxTerms], be[kMaxTerms], centre[kMaxTerms];
  // rbf by ratios: rb_k = a_k rbf_factor(k), rbd_k = rb_k (k - mid) sqrt(log2 e); inv_w sqrt(log2 e),
  // 2 sqrt(log2 e) and dscale / sqrt(log2 e)
  float rb[kMaxTerms], rbd[kMaxTerms], inv_ws, two_s, dscale_s;

  // z = x / range clamped to [-1, 1] (zc) and the excess beyond it (ex), for U vectors.
  template <int U>
  ACTLAB_INLINE void locate(const vf* x, vf* zc, vf* ex) const {
    EACH {
      vf z = x[u] * inv_r;
      zc[u] = clamp(z, -1.f, 1.f);
      ex[u] = z - zc[u];
    }
  }

  // fourier's next harmonic by Chebyshev's recurrence, cos (k+1)a = 2 cos a cos ka - cos (k-1)a
  // and likewise sin: one multiply-add each; (cp, sp) is harmonic k - 1, c2 = 2 cos a.
  static ACTLAB_INLINE void next(vf& ck, vf& sk, vf& cp, vf& sp, vf c2) {
    vf cn = c2 * ck - cp, sn = c2 * sk - sp;
    cp = ck, sp = sk, ck = cn, sk = sn;
  }

  template <int KIND, int U, int KF = 0>
  ACTLAB_INLINE void forward(const vf* x, vf* y) const {
    const int K = KF ? KF : nk, mid = (K - 1) / 2;  // mid: rbf's middle centre
    vf acc[U];
    if (KIND == kFourier) {
      vf c2[U], ck[U], sk[U], cp[U], sp[U];
      EACH {
        sincos_quarter(x[u] * inv_r, sk[u], ck[u]);
        acc[u] = splat(a[0]);
        c2[u] = ck[u] + ck[u], cp[u] = splat(1.f), sp[u] = vf{};
      }
      KLOOP for (int k = 1; 2 * k < K; ++k) {
        EACH acc[u] += a[2 * k - 1] * ck[u] + a[2 * k] * sk[u];
        if (2 * k + 2 < K) EACH next(ck[u], sk[u], cp[u], sp[u], c2[u]);
      }
    } else {
      vf zc[U], ex[U];
      locate<U>(x, zc, ex);
      EACH acc[u] = splat(a[K - 1]);
      if (KIND == kPower) {
        KLOOP for (int k = K - 2; k >= 0; --k) EACH acc[u] = acc[u] * zc[u] + a[k];
      } else if (KIND == kThreeTerm) {  // Clenshaw: b_k = a_k + zc b_{k+1} - be_{k+1} b_{k+2}, p = b_0
        vf b2[U];
        EACH b2[u] = vf{};
        KLOOP for (int k = K - 2; k >= 0; --k) EACH {
          vf b = acc[u] * zc[u] + a[k] - be[k + 1] * b2[u];
          b2[u] = acc[u];
          acc[u] = b;
        }
      } else if (KIND == kRbfRatios) {
        vf q[U], up[U], dn[U];
        EACH {
          vf ts = (zc[u] - centre[mid]) * inv_ws;  // t sqrt(log2 e): exps in base 2
          q[u] = vexp2(-(ts * ts));
          vexp2_pair(ts * two_s - kLog2E, up[u], dn[u]);
        }
        // q (a_mid + sum_j rb_{mid+j} up^j + sum_j rb_{mid-j} dn^j), both sums by Horner's rule.
        vf hp[U], hn[U];
        EACH hp[u] = vf{}, hn[u] = vf{};
        if (K - 1 > mid) {
          EACH hp[u] = splat(rb[K - 1]);
          KLOOP for (int k = K - 2; k > mid; --k) EACH hp[u] = hp[u] * up[u] + rb[k];
        }
        if (mid > 0) {
          EACH hn[u] = splat(rb[0]);
          KLOOP for (int k = 1; k < mid; ++k) EACH hn[u] = hn[u] * dn[u] + rb[k];
        }
        EACH acc[u] = q[u] * (up[u] * hp[u] + (dn[u] * hn[u] + a[mid]));
      } else {
        EACH acc[u] = vf{};
        KLOOP for (int k = 0; k < K; ++k) EACH {
          vf d = (zc[u] - centre[k]) * inv_w;
          acc[u] += a[k] * exp_nonpos(-(d * d));
        }
      }
      if (flat) EACH ex[u] = clamp(ex[u], lc, uc);  // +-inf then gives 0 there, not 0 * inf
      EACH acc[u] += ex[u] * vselect(ex[u] > splat(0.f), splat(s_hi), splat(s_lo));
    }
    if (hybrid) {
      EACH {
        vf xr = KIND == kFourier ? x[u] : vselect(x[u] > splat(r_max), splat(r_max), x[u]);
        y[u] = acc[u] + w * pos(xr);
      }
    } else {
      EACH y[u] = acc[u];
    }
  }

  // Adds g psi_k to S[k] (k < K) and g max(ex, 0), g min(ex, 0), g relu(x) to
  // S[K..K+2]; writes grad_input to gx.
  template <int KIND, int U, int KF = 0>
  ACTLAB_INLINE void backward(const vf* x, const vf* g, vf* gx, vf* S) const {
    const int K = KF ? KF : nk, mid = (K - 1) / 2;
    vf dp[U];
    EACH dp[u] = vf{};
    if (KIND == kFourier) {
      vf c2[U], ck[U], sk[U], cp[U], sp[U];
      EACH {
        sincos_quarter(x[u] * inv_r, sk[u], ck[u]);
        c2[u] = ck[u] + ck[u], cp[u] = splat(1.f), sp[u] = vf{};
      }
      S[0] += sum<U>([&](int u) { return g[u]; });
      KLOOP for (int k = 1; 2 * k < K; ++k) {
        const float wc = a[2 * k] * static_cast<float>(1.57079632679489662 * k);
        const float ws = a[2 * k - 1] * static_cast<float>(1.57079632679489662 * k);
        S[2 * k - 1] += sum<U>([&](int u) { return g[u] * ck[u]; });
        S[2 * k] += sum<U>([&](int u) { return g[u] * sk[u]; });
        EACH dp[u] += wc * ck[u] - ws * sk[u];
        if (2 * k + 2 < K) EACH next(ck[u], sk[u], cp[u], sp[u], c2[u]);
      }
    } else {
      vf zc[U], ex[U];
      locate<U>(x, zc, ex);
      // g psi_k and g psi'_k obey the recurrences of psi_k and psi'_k, so g is
      // folded in from the start: S_k adds q_k = g psi_k, and dp is g p'(zc).
      if (KIND == kPower) {
        vf q[U];
        EACH q[u] = g[u];
        S[0] += sum<U>([&](int u) { return q[u]; });
        if (K > 1) {
          EACH dp[u] = splat(a[K - 1] * static_cast<float>(K - 1));
          KLOOP for (int k = K - 2; k >= 1; --k) EACH dp[u] = dp[u] * zc[u] + a[k] * static_cast<float>(k);
          EACH dp[u] *= g[u];
        }
        KLOOP for (int k = 1; k < K; ++k) {
          EACH q[u] = q[u] * zc[u];
          S[k] += sum<U>([&](int u) { return q[u]; });
        }
      } else if (KIND == kThreeTerm) {
        S[0] += sum<U>([&](int u) { return g[u]; });
        if (K > 1) {
          vf q0[U], q1[U], d0[U], d1[U];
          EACH q0[u] = g[u], q1[u] = g[u] * zc[u], d0[u] = vf{}, d1[u] = g[u], dp[u] = a[1] * g[u];
          S[1] += sum<U>([&](int u) { return q1[u]; });
          KLOOP for (int k = 1; k + 1 < K; ++k) {
            EACH {
              vf q2 = zc[u] * q1[u] - be[k] * q0[u];
              vf d2 = zc[u] * d1[u] + q1[u] - be[k] * d0[u];
              dp[u] += a[k + 1] * d2;
              q0[u] = q1[u], q1[u] = q2, d0[u] = d1[u], d1[u] = d2;
            }
            S[k + 1] += sum<U>([&](int u) { return q1[u]; });
          }
        }
      } else if (KIND == kRbfRatios) {
        // h_k = g q up^j (j = k - mid > 0; dn^j below), the terms g phi_k without their factors
        // (rbf_factor), which the caller applies to the sums. With ts = t sqrt(log2 e),
        // g p'(zc) / dscale = t A - B = (ts A - B') / sqrt(log2 e), A = sum rb_k h_k,
        // B' = sum rbd_k h_k, rbd_k = rb_k (k - mid) sqrt(log2 e).
        vf t[U], up[U], dn[U], h0[U], h[U], A[U], B[U];
        EACH {
          t[u] = (zc[u] - centre[mid]) * inv_ws;
          vexp2_pair(t[u] * two_s - kLog2E, up[u], dn[u]);
          h0[u] = g[u] * vexp2(-(t[u] * t[u]));
          A[u] = a[mid] * h0[u], B[u] = vf{}, h[u] = h0[u];
        }
        S[mid] += sum<U>([&](int u) { return h0[u]; });
        KLOOP for (int k = mid + 1; k < K; ++k) {
          EACH {
            h[u] *= up[u];
            A[u] += rb[k] * h[u];
            B[u] += rbd[k] * h[u];
          }
          S[k] += sum<U>([&](int u) { return h[u]; });
        }
        EACH h[u] = h0[u];
        KLOOP for (int k = mid - 1; k >= 0; --k) {
          EACH {
            h[u] *= dn[u];
            A[u] += rb[k] * h[u];
            B[u] += rbd[k] * h[u];
          }
          S[k] += sum<U>([&](int u) { return h[u]; });
        }
        EACH dp[u] = (t[u] * A[u] - B[u]) * dscale_s;
      } else {
        KLOOP for (int k = 0; k < K; ++k) {
          vf phi[U];
          EACH {
            vf d = (zc[u] - centre[k]) * inv_w;
            phi[u] = exp_nonpos(-(d * d));
            dp[u] += a[k] * (dscale * d * phi[u]);
          }
          S[k] += sum<U>([&](int u) { return g[u] * phi[u]; });
        }
      }
      S[K] += sum<U>([&](int u) { return g[u] * pos(ex[u]); });
      S[K + 1] += sum<U>([&](int u) { return g[u] * neg(ex[u]); });
    }
    if (KIND == kPower || KIND == kThreeTerm || KIND == kRbfRatios) {  // dp holds g already
      EACH gx[u] = dp[u] * inv_r;
    } else {
      EACH gx[u] = g[u] * (dp[u] * inv_r);
    }
    if (hybrid) {
      EACH gx[u] += g[u] * vselect(x[u] > splat(0.f), splat(w), splat(0.f));
      S[K + 2] += sum<U>([&](int u) { return g[u] * pos(x[u]); });
    }
  }
};

#undef EACH
#undef KLOOP

}  // namespace
}  // namespace actlab
