//
// tf_kernels_impl.h: the int8 kernels tinyface generates for one model (firmware.kernels =
// "generated"). Every shape, stride, padding and quantisation offset is a template argument,
// so the compiler sees constant loop bounds; tf_kernels.cc instantiates one per op of the
// model with its repacked weights. Nothing here changes between models: this header is
// rendered verbatim.
//
// Bit-exactness with TFLM's reference kernels (tensorflow/lite/kernels/internal/reference/
// integer_ops/) rests on three facts:
//  * accumulation is exact int32 arithmetic, so summation order does not matter, and
//    sum(w * (x + input_offset)) + bias == sum(w * x) + (bias + input_offset * sum(w)): the
//    second term is precomputed per channel (bias_folded) for pixels whose taps are all
//    inside the input; border pixels skip the outside taps exactly as the reference does
//    (convolutions: acc starts at the raw bias and adds w * (x + input_offset) for inside
//    taps only; depthwise: the same sum regrouped per segment of pixels sharing one window);
//  * requantisation is MultiplyByQuantizedMultiplier (common.cc/common.h), in both its
//    double- and single-rounding forms: written out operation by operation, or in a shorter
//    form codegen proves equal for every channel of the op (kRequantFast, kRequantMulh below);
//  * the multipliers, shifts and activation bounds baked in by codegen are checked against
//    TFLM's own QuantizeMultiplier/CalculateActivationRangeQuantized in each op's Prepare
//    (tf_kernels.cc), so a model they do not match fails at AllocateTensors, never silently.
//
// Tiling: convolutions compute 4 output channels x 4 (or 2) adjacent output pixels in int32
// registers (weights repacked [channel block][ky][kx][cin][4] so the inner loop reads them in
// order); depthwise 4 channels x 2 pixels; fully connected 8 units. Each tile requantizes
// and stores its values from the registers (put).
#ifndef TINYFACE_TF_KERNELS_IMPL_H
#define TINYFACE_TF_KERNELS_IMPL_H

#include <stdint.h>

#ifndef TFLITE_SINGLE_ROUNDING
#define TFLITE_SINGLE_ROUNDING 0
#endif

#if defined(__GNUC__)
#define TFK_NOINLINE __attribute__((noinline))
#define TFK_PRAGMA(x) _Pragma(#x)
// Fully unroll a loop over a tile's registers (GCC at -O2 keeps small loops rolled and then
// copies the tile through memory).
#define TFK_UNROLL(n) TFK_PRAGMA(GCC unroll n)
#else
#define TFK_NOINLINE
#define TFK_UNROLL(n)
#endif
// A register tile: a function of its own (inlined into the pixel loops, GCC spills the tile),
// compiled without GCC's scheduling before register allocation, which hoists every load of a
// loop step to the top and then spills accumulators to make room (on RV32 with 16
// accumulators: 47 instructions per 16 multiply-accumulates instead of about 40).
#if defined(__GNUC__) && !defined(__clang__)
#define TFK_TILE __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define TFK_TILE TFK_NOINLINE
#endif

namespace tfk {

// gemmlowp::SaturatingRoundingDoublingHighMul for multiplier >= 0 (QuantizeMultiplier never
// gives a negative one, so its a == b == INT32_MIN saturation case cannot occur). gemmlowp
// computes trunc((ab + nudge) / 2^31) with nudge = 2^30 for ab >= 0 and 1 - 2^30 below; for
// ab < 0 the truncation adds 2^31 - 1 before an arithmetic shift, so both cases are
// (ab + 2^30) >> 31 = (a * 2m + 2^31) >> 32: with P = a * 2m (2m < 2^32 as unsigned) that is
// high32(P) + (low32(P) >> 31), a signed-by-unsigned high multiply (RV32M mulhsu), a multiply
// and a shift instead of a 64-bit division.
static inline int32_t doubling_high_mul(int32_t a, int32_t multiplier) {
  const uint32_t twice = static_cast<uint32_t>(multiplier) << 1;
  const int64_t p = static_cast<int64_t>(a) * static_cast<int64_t>(twice);
  return static_cast<int32_t>(p >> 32) + static_cast<int32_t>(static_cast<uint32_t>(p) >> 31);
}

// gemmlowp::RoundingDivideByPOT: round half away from zero.
static inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((static_cast<int64_t>(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// tflite::MultiplyByQuantizedMultiplier(int32_t, int32_t, int), inlined.
static inline int32_t requantize(int32_t x, int32_t multiplier, int shift) {
#if TFLITE_SINGLE_ROUNDING
  const int64_t total_shift = 31 - shift;
  const int64_t round = static_cast<int64_t>(1) << (total_shift - 1);
  const int64_t result = x * static_cast<int64_t>(multiplier) + round;
  return static_cast<int32_t>(result >> total_shift);
#else
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  const int32_t a = static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
  return rounding_divide_by_pot(doubling_high_mul(a, multiplier), right_shift);
#endif
}

// tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (ADD's rescaling), inlined.
static inline int32_t requantize_smaller_than_one(int32_t x, int32_t multiplier, int left_shift) {
#if TFLITE_SINGLE_ROUNDING
  return requantize(x, multiplier, left_shift);
#else
  return rounding_divide_by_pot(doubling_high_mul(x, multiplier), -left_shift);
#endif
}

// requantize() for a shift <= -1 and an |acc| small enough that |high| + 2^(right_shift - 1)
// cannot overflow: codegen proves both per channel from the weights and bias (|acc| <=
// |bias| + 255 * sum|w|) and otherwise instantiates the general path (kRequantExact).
// RoundingDivideByPOT then is (x + 2^(r-1) - (x < 0)) >> r: round half away from zero.
static inline int32_t requantize_fast(int32_t x, int32_t multiplier, int shift) {
#if TFLITE_SINGLE_ROUNDING
  return requantize(x, multiplier, shift);
#else
  const int right_shift = -shift;
  const int32_t high = doubling_high_mul(x, multiplier);
  return (high + ((1 << right_shift) >> 1) + (high >> 31)) >> right_shift;
#endif
}

// The requantization forms (template argument RQ; codegen picks the shortest it proves exact for
// every channel of the op, tinyface/codegen/kernels.py _requant_mode):
//  * kRequantExact: requantize(), TFLM's form written out;
//  * kRequantFast: requantize_fast(), its operands precomputed per channel as {2 * TFLM's
//    multiplier (as uint32), the right shift (-TFLM's shift), 2^(right shift - 1)};
//  * kRequantMulh: per channel {m, B, S} with m TFLM's multiplier, S = right shift + 1 and B =
//    output offset * 2^S + 2^(S-1) + 1: the output, offset included, is
//    (mulh(4 * acc, m) + B + 2 * (acc >> 31)) >> S, one 32x32->high-32 multiply (see
//    kernels.py mulh_operands for why this is MultiplyByQuantizedMultiplier's double rounding
//    exactly). The sign term is dropped when the activation's lower bound is at least the
//    output offset (every value <= 0 clamps to it either way). Codegen proves 4 * |acc| fits
//    int32 from the weights and bias, and, with the sign term, that every m exceeds 2^30.
enum : int { kRequantExact = 0, kRequantFast = 1, kRequantMulh = 2 };

// Per-channel constants of one convolution-like op (all arrays padded to the channel blocks).
// With kRequantFast or kRequantMulh, requant holds the form's three operands per channel side
// by side so one pointer reaches them; multiplier and shift are then unused.
struct ChannelParams {
  const int32_t* bias_folded;  // bias + input_offset * sum(weights), for all-inside pixels
  const int32_t* bias;         // the model's bias, for border pixels
  const int32_t* multiplier;   // kRequantExact
  const int32_t* shift;
  const int32_t* requant;      // kRequantFast, kRequantMulh
};

// (mulh(4 * acc, m) + b + sign term) >> s: kRequantMulh, the output offset included.
template <bool SIGNED>
static inline int32_t requantize_mulh(int32_t acc, int32_t m, int32_t b, int32_t s) {
  int32_t high = static_cast<int32_t>((static_cast<int64_t>(acc * 4) * m) >> 32) + b;
  if (SIGNED) high += (acc >> 31) * 2;
  return high >> s;
}

// One past the last output row (column) whose taps all lie inside the input: the largest o
// with o * stride - pad + kernel <= size. (size - kernel + pad can be negative: then none,
// where C++'s division, truncating towards zero, would wrongly give one.)
constexpr int inside_end(int size, int kernel, int stride, int pad, int out) {
  return size - kernel + pad < 0 ? 0 : ((size - kernel + pad) / stride + 1 < out ? (size - kernel + pad) / stride + 1 : out);
}

template <int32_t OUT_OFFSET, int32_t ACT_MIN, int32_t ACT_MAX, int RQ>
static inline int8_t to_int8(int32_t acc, const ChannelParams& p, int c) {
  int32_t v;
  if (RQ == kRequantMulh) {
    const int32_t* q = p.requant + 3 * c;
#if TFLITE_SINGLE_ROUNDING
    v = requantize(acc, q[0], 1 - q[2]) + OUT_OFFSET;
#else
    v = requantize_mulh<(ACT_MIN < OUT_OFFSET)>(acc, q[0], q[1], q[2]);
#endif
  } else if (RQ == kRequantFast) {
    const int32_t* q = p.requant + 3 * c;
#if TFLITE_SINGLE_ROUNDING
    v = requantize(acc, static_cast<int32_t>(static_cast<uint32_t>(q[0]) >> 1), -q[1]);
#else
    const int64_t prod = static_cast<int64_t>(acc) * static_cast<int64_t>(static_cast<uint32_t>(q[0]));
    const int32_t high = static_cast<int32_t>(prod >> 32) + static_cast<int32_t>(static_cast<uint32_t>(prod) >> 31);
    v = (high + q[2] + (high >> 31)) >> q[1];
#endif
    v += OUT_OFFSET;
  } else {
    v = requantize(acc, p.multiplier[c], p.shift[c]) + OUT_OFFSET;
  }
  v = v < ACT_MIN ? ACT_MIN : v;
  v = v > ACT_MAX ? ACT_MAX : v;
  return static_cast<int8_t>(v);
}


// Requantize channel c of NPIX pixels (acc[k]) and store them at out[k * step]. With
// kRequantMulh the channel's three operands are loaded once for all NPIX values.
template <int32_t OUT_OFFSET, int32_t ACT_MIN, int32_t ACT_MAX, int RQ, int NPIX>
static inline void put(const int32_t* acc, const ChannelParams& p, int c, int8_t* out, int step) {
#if !TFLITE_SINGLE_ROUNDING
  if (RQ == kRequantMulh) {
    const int32_t* q = p.requant + 3 * c;
    const int32_t m = q[0], b = q[1], s = q[2];
    TFK_UNROLL(16)
    for (int k = 0; k < NPIX; ++k) {
      int32_t v = requantize_mulh<(ACT_MIN < OUT_OFFSET)>(acc[k], m, b, s);
      v = v < ACT_MIN ? ACT_MIN : v;
      v = v > ACT_MAX ? ACT_MAX : v;
      out[k * step] = static_cast<int8_t>(v);
    }
    return;
  }
#endif
  TFK_UNROLL(16)
  for (int k = 0; k < NPIX; ++k) out[k * step] = to_int8<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ>(acc[k], p, c);
}

// CONV_2D, NHWC, batch 1, dilation 1. Weights: [COUT/4 rounded up][KH][KW][CIN][4].
template <int IH, int IW, int CIN, int OH, int OW, int COUT, int KH, int KW, int SH, int SW, int PT, int PL,
          int32_t IN_OFFSET, int32_t OUT_OFFSET, int32_t ACT_MIN, int32_t ACT_MAX, int RQ>
struct Conv {
  static constexpr int kBlocks = (COUT + 3) / 4;
  static constexpr int kBlockWeights = KH * KW * CIN * 4;
  // A 1x1 stride-1 convolution without padding, flattened by codegen to one row of pixels.
  static constexpr bool kPointwise = KH == 1 && KW == 1 && SH == 1 && SW == 1 && IH == 1 && OH == 1 && PL == 0;
  // Output rows/columns whose taps all lie inside the input.
  static constexpr int kY0 = (PT + SH - 1) / SH;
  static constexpr int kY1 = inside_end(IH, KH, SH, PT, OH);
  static constexpr int kX0 = (PL + SW - 1) / SW;
  static constexpr int kX1 = inside_end(IW, KW, SW, PL, OW);

  static inline void store4(int8_t* out, int block, const ChannelParams& p, const int32_t* acc) {
    for (int j = 0; j < 4; ++j) {
      const int co = block * 4 + j;
      if (COUT % 4 != 0 && co >= COUT) break;
      out[co] = to_int8<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ>(acc[j], p, co);
    }
  }

  // Requantize and store a tile of NPIX pixels x 4 channels (channel j of pixel k in
  // acc[k * 4 + j]) at out, pixels step bytes apart; channels past COUT are padding.
  template <int NPIX>
  static inline void store_tile(const int32_t* acc, int block, const ChannelParams& p, int8_t* out, int step) {
    TFK_UNROLL(4)
    for (int j = 0; j < 4; ++j) {
      const int co = block * 4 + j;
      if (COUT % 4 != 0 && co >= COUT) break;
      int32_t ch[NPIX];
      TFK_UNROLL(16)
      for (int k = 0; k < NPIX; ++k) ch[k] = acc[k * 4 + j];
      put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, NPIX>(ch, p, co, out + co, step);
    }
  }

  // The 4 channels x 2 pixels tile, requantized and stored: its own function so that the loop
  // keeps its 8 accumulators and 6 operands in registers (inlined into the pixel loops, GCC
  // spills them).
  static TFK_TILE void tile_2x4(const int8_t* in0, const int8_t* wp, int block, const ChannelParams& params,
                                    int8_t* out) {
    // A local copy: the int8 output stores could alias params, which would then be re-read.
    const ChannelParams p = params;
    const int32_t* bf = p.bias_folded + block * 4;
    int32_t a0 = bf[0], a1 = bf[1], a2 = bf[2], a3 = bf[3];
    int32_t c0 = a0, c1 = a1, c2 = a2, c3 = a3;
    for (int ky = 0; ky < KH; ++ky) {
      for (int kx = 0; kx < KW; ++kx) {
        const int8_t* xp = in0 + (ky * IW + kx) * CIN;
        for (int ci = 0; ci < CIN; ++ci) {
          const int32_t x0 = xp[ci], x1 = xp[ci + SW * CIN];
          const int32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
          wp += 4;
          a0 += x0 * w0; a1 += x0 * w1; a2 += x0 * w2; a3 += x0 * w3;
          c0 += x1 * w0; c1 += x1 * w1; c2 += x1 * w2; c3 += x1 * w3;
        }
      }
    }
    const int32_t acc[8] = {a0, a1, a2, a3, c0, c1, c2, c3};
    store_tile<2>(acc, block, p, out, COUT);
  }

  // 4 channels x 4 pixels for 1x1 stride-1 convolutions (16 accumulators: a matrix product),
  // requantized and stored.
  static TFK_TILE void tile_4x4(const int8_t* xp, const int8_t* wp, int block, const ChannelParams& params,
                                    int8_t* out) {
    // A local copy: the int8 output stores could alias params, which would then be re-read.
    const ChannelParams p = params;
    const int32_t* bf = p.bias_folded + block * 4;
    int32_t a0 = bf[0], a1 = bf[1], a2 = bf[2], a3 = bf[3];
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3, c0 = a0, c1 = a1, c2 = a2, c3 = a3, d0 = a0, d1 = a1, d2 = a2,
            d3 = a3;
    // Two input channels per step, the weights pointer the only induction variable (a
    // pointer increment per 32 multiply-accumulates).
    const int8_t* const wend = wp + (CIN & ~1) * 4;
    for (; wp != wend; wp += 8, xp += 2) {
      int32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
      int32_t x = xp[0];
      a0 += x * w0; a1 += x * w1; a2 += x * w2; a3 += x * w3;
      x = xp[CIN];
      b0 += x * w0; b1 += x * w1; b2 += x * w2; b3 += x * w3;
      x = xp[2 * CIN];
      c0 += x * w0; c1 += x * w1; c2 += x * w2; c3 += x * w3;
      x = xp[3 * CIN];
      d0 += x * w0; d1 += x * w1; d2 += x * w2; d3 += x * w3;
      w0 = wp[4]; w1 = wp[5]; w2 = wp[6]; w3 = wp[7];
      x = xp[1];
      a0 += x * w0; a1 += x * w1; a2 += x * w2; a3 += x * w3;
      x = xp[CIN + 1];
      b0 += x * w0; b1 += x * w1; b2 += x * w2; b3 += x * w3;
      x = xp[2 * CIN + 1];
      c0 += x * w0; c1 += x * w1; c2 += x * w2; c3 += x * w3;
      x = xp[3 * CIN + 1];
      d0 += x * w0; d1 += x * w1; d2 += x * w2; d3 += x * w3;
    }
    if (CIN % 2 != 0) {
      const int32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
      int32_t x = xp[0];
      a0 += x * w0; a1 += x * w1; a2 += x * w2; a3 += x * w3;
      x = xp[CIN];
      b0 += x * w0; b1 += x * w1; b2 += x * w2; b3 += x * w3;
      x = xp[2 * CIN];
      c0 += x * w0; c1 += x * w1; c2 += x * w2; c3 += x * w3;
      x = xp[3 * CIN];
      d0 += x * w0; d1 += x * w1; d2 += x * w2; d3 += x * w3;
    }
    const int32_t acc[16] = {a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3};
    store_tile<4>(acc, block, p, out, COUT);
  }

  // 4 channels x 4 horizontally adjacent inside pixels of a convolution with taps (KH x KW,
  // stride SW), requantized and stored.
  static TFK_TILE void tile_4x4_taps(const int8_t* in0, const int8_t* wp, int block, const ChannelParams& params,
                                     int8_t* out) {
    // A local copy: the int8 output stores could alias params, which would then be re-read.
    const ChannelParams p = params;
    const int32_t* bf = p.bias_folded + block * 4;
    int32_t a0 = bf[0], a1 = bf[1], a2 = bf[2], a3 = bf[3];
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3, c0 = a0, c1 = a1, c2 = a2, c3 = a3, d0 = a0, d1 = a1, d2 = a2,
            d3 = a3;
    for (int ky = 0; ky < KH; ++ky) {
      for (int kx = 0; kx < KW; ++kx) {
        const int8_t* xp = in0 + (ky * IW + kx) * CIN;
        for (int ci = 0; ci < CIN; ++ci) {
          const int32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
          wp += 4;
          int32_t x = xp[ci];
          a0 += x * w0; a1 += x * w1; a2 += x * w2; a3 += x * w3;
          x = xp[ci + SW * CIN];
          b0 += x * w0; b1 += x * w1; b2 += x * w2; b3 += x * w3;
          x = xp[ci + 2 * SW * CIN];
          c0 += x * w0; c1 += x * w1; c2 += x * w2; c3 += x * w3;
          x = xp[ci + 3 * SW * CIN];
          d0 += x * w0; d1 += x * w1; d2 += x * w2; d3 += x * w3;
        }
      }
    }
    const int32_t acc[16] = {a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3};
    store_tile<4>(acc, block, p, out, COUT);
  }

  // Four horizontally adjacent inside pixels (oy, ox .. ox + 3).
  static inline void quad(const int8_t* in, int8_t* out, int oy, int ox, const int8_t* w, const ChannelParams& p) {
    const int8_t* in0 = in + ((oy * SH - PT) * IW + (ox * SW - PL)) * CIN;
    int8_t* out0 = out + (oy * OW + ox) * COUT;
    for (int b = 0; b < kBlocks; ++b) {
      if (kPointwise) {
        tile_4x4(in0, w + b * kBlockWeights, b, p, out0);
      } else {
        tile_4x4_taps(in0, w + b * kBlockWeights, b, p, out0);
      }
    }
  }

  // Two horizontally adjacent inside pixels (oy, ox) and (oy, ox + 1).
  static inline void pair(const int8_t* in, int8_t* out, int oy, int ox, const int8_t* w, const ChannelParams& p) {
    const int8_t* in0 = in + ((oy * SH - PT) * IW + (ox * SW - PL)) * CIN;
    int8_t* out0 = out + (oy * OW + ox) * COUT;
    for (int b = 0; b < kBlocks; ++b) tile_2x4(in0, w + b * kBlockWeights, b, p, out0);
  }

  // One pixel with bounds checks (taps outside the input are skipped, as in the reference).
  static inline void border(const int8_t* in, int8_t* out, int oy, int ox, const int8_t* w, const ChannelParams& p) {
    const int iy0 = oy * SH - PT, ix0 = ox * SW - PL;
    const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = IH - iy0 < KH ? IH - iy0 : KH;
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = IW - ix0 < KW ? IW - ix0 : KW;
    int8_t* o = out + (oy * OW + ox) * COUT;
    for (int b = 0; b < kBlocks; ++b) {
      int32_t acc[4] = {p.bias[b * 4], p.bias[b * 4 + 1], p.bias[b * 4 + 2], p.bias[b * 4 + 3]};
      for (int ky = ky0; ky < ky1; ++ky) {
        for (int kx = kx0; kx < kx1; ++kx) {
          const int8_t* xp = in + ((iy0 + ky) * IW + (ix0 + kx)) * CIN;
          const int8_t* wp = w + b * kBlockWeights + (ky * KW + kx) * CIN * 4;
          for (int ci = 0; ci < CIN; ++ci) {
            const int32_t x = xp[ci] + IN_OFFSET;
            acc[0] += x * wp[0]; acc[1] += x * wp[1]; acc[2] += x * wp[2]; acc[3] += x * wp[3];
            wp += 4;
          }
        }
      }
      store4(o, b, p, acc);
    }
  }

  static void run(const int8_t* in, int8_t* out, const int8_t* w, const ChannelParams& p) {
    for (int oy = 0; oy < OH; ++oy) {
      if (oy < kY0 || oy >= kY1) {
        for (int ox = 0; ox < OW; ++ox) border(in, out, oy, ox, w, p);
        continue;
      }
      for (int ox = 0; ox < kX0; ++ox) border(in, out, oy, ox, w, p);
      int ox = kX0;
      for (; ox + 3 < kX1; ox += 4) quad(in, out, oy, ox, w, p);
      for (; ox + 1 < kX1; ox += 2) pair(in, out, oy, ox, w, p);
      for (; ox < OW; ++ox) border(in, out, oy, ox, w, p);
    }
  }
};

// DEPTHWISE_CONV_2D with depth multiplier 1, NHWC, batch 1, dilation 1.
// Weights: [C/4][KH][KW][4] for the full blocks, then [KH][KW][C % 4] for the rest.
template <int IH, int IW, int C, int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL,
          int32_t IN_OFFSET, int32_t OUT_OFFSET, int32_t ACT_MIN, int32_t ACT_MAX, int RQ>
struct Depthwise {
  static constexpr int kBlocks = C / 4;
  static constexpr int kRest = C % 4;
  static constexpr int kY0 = (PT + SH - 1) / SH;
  static constexpr int kY1 = inside_end(IH, KH, SH, PT, OH);
  static constexpr int kX0 = (PL + SW - 1) / SW;
  static constexpr int kX1 = inside_end(IW, KW, SW, PL, OW);

  // 4 channels x 2 pixels over all taps, requantized and stored, in its own function
  // (registers, as Conv::tile_2x4).
  static TFK_TILE void tile_2x4(const int8_t* x0, const int8_t* wp, int c, const ChannelParams& params,
                                    int8_t* out) {
    // A local copy: the int8 output stores could alias params, which would then be re-read.
    const ChannelParams p = params;
    const int32_t* bf = p.bias_folded + c;
    int32_t a0 = bf[0], a1 = bf[1], a2 = bf[2], a3 = bf[3];
    int32_t c0 = a0, c1 = a1, c2 = a2, c3 = a3;
    for (int ky = 0; ky < KH; ++ky) {
      for (int kx = 0; kx < KW; ++kx) {
        const int8_t* xp = x0 + (ky * IW + kx) * C;
        const int32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
        wp += 4;
        a0 += xp[0] * w0; a1 += xp[1] * w1; a2 += xp[2] * w2; a3 += xp[3] * w3;
        c0 += xp[SW * C] * w0; c1 += xp[SW * C + 1] * w1; c2 += xp[SW * C + 2] * w2; c3 += xp[SW * C + 3] * w3;
      }
    }
    const int32_t ch0[2] = {a0, c0}, ch1[2] = {a1, c1}, ch2[2] = {a2, c2}, ch3[2] = {a3, c3};
    put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch0, p, c, out, C);
    put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch1, p, c + 1, out + 1, C);
    put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch2, p, c + 2, out + 2, C);
    put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch3, p, c + 3, out + 3, C);
  }

  static inline void pair(const int8_t* in, int8_t* out, int oy, int ox, const int8_t* w, const ChannelParams& p) {
    const int8_t* in0 = in + ((oy * SH - PT) * IW + (ox * SW - PL)) * C;
    const int8_t* in1 = in0 + SW * C;
    int8_t* out0 = out + (oy * OW + ox) * C;
    int8_t* out1 = out0 + C;
    const int8_t* wp = w;
    for (int b = 0; b < kBlocks; ++b) {
      const int c = b * 4;
      tile_2x4(in0 + c, wp, c, p, out0 + c);
      wp += KH * KW * 4;
    }
    for (int r = 0; r < kRest; ++r) {
      const int c = kBlocks * 4 + r;
      int32_t a = p.bias_folded[c], d = a;
      for (int k = 0; k < KH * KW; ++k) {
        const int off = ((k / KW) * IW + (k % KW)) * C + c;
        const int32_t wv = wp[k * kRest + r];
        a += in0[off] * wv;
        d += in1[off] * wv;
      }
      out0[c] = to_int8<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ>(a, p, c);
      out1[c] = to_int8<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ>(d, p, c);
    }
  }

  // The pixels of the rectangle [oy0, oy1) x [ox0, ox1) of output, which share one window of
  // taps inside the input (kernel rows ky0..ky1, columns kx0..kx1; taps outside are skipped
  // as in the reference). The reference's bias + sum over the window of w * (x + IN_OFFSET) is
  // regrouped (exact integer arithmetic) as (bias + IN_OFFSET * sum of the window's weights),
  // computed once per channel block for the whole rectangle, + sum of w * x per pixel.
  static TFK_NOINLINE void segment(const int8_t* in, int8_t* out, int oy0, int oy1, int ox0, int ox1,
                                   const int8_t* w, const ChannelParams& params) {
    const ChannelParams p = params;  // a local copy: the int8 stores could alias params
    const int iy0 = oy0 * SH - PT, ix0 = ox0 * SW - PL;
    const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = IH - iy0 < KH ? IH - iy0 : KH;
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = IW - ix0 < KW ? IW - ix0 : KW;
    for (int b = 0; b < kBlocks; ++b) {
      const int c = b * 4;
      const int8_t* wb = w + b * KH * KW * 4 + (ky0 * KW + kx0) * 4;
      const bool full = ky0 == 0 && kx0 == 0 && ky1 == KH && kx1 == KW;  // then it is bias_folded
      int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int ky = ky0; ky < ky1 && !full; ++ky) {
        const int8_t* wp = wb + (ky - ky0) * KW * 4;
        for (int kx = kx0; kx < kx1; ++kx, wp += 4) {
          s0 += wp[0]; s1 += wp[1]; s2 += wp[2]; s3 += wp[3];
        }
      }
      const int32_t* bias = full ? p.bias_folded : p.bias;
      const int32_t b0 = bias[c] + IN_OFFSET * s0, b1 = bias[c + 1] + IN_OFFSET * s1,
                    b2 = bias[c + 2] + IN_OFFSET * s2, b3 = bias[c + 3] + IN_OFFSET * s3;
      // Two pixels at a time, side by side in a row (or one above the other in a column); the
      // last pixel of an odd row or column alone.
      const bool across = ox1 - ox0 >= 2;
      const int n = (oy1 - oy0) * (ox1 - ox0);
      const int x_step = across ? SW * C : SH * IW * C, o_step = across ? C : OW * C;
      for (int i = 0; i < n; i += 2) {
        const int oy = across ? oy0 + i / (ox1 - ox0) : oy0 + i, ox = across ? ox0 + i % (ox1 - ox0) : ox0;
        const bool two = across ? ox + 1 < ox1 : oy + 1 < oy1;
        const int8_t* base = in + ((oy * SH - PT + ky0) * IW + (ox * SW - PL + kx0)) * C + c;
        int8_t* o = out + (oy * OW + ox) * C + c;
        if (!two) {
          int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3;
          for (int ky = ky0; ky < ky1; ++ky) {
            const int8_t* xp = base + (ky - ky0) * IW * C;
            const int8_t* wp = wb + (ky - ky0) * KW * 4;
            for (int kx = kx0; kx < kx1; ++kx, xp += C, wp += 4) {
              a0 += xp[0] * wp[0]; a1 += xp[1] * wp[1]; a2 += xp[2] * wp[2]; a3 += xp[3] * wp[3];
            }
          }
          put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 1>(&a0, p, c, o, 0);
          put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 1>(&a1, p, c + 1, o + 1, 0);
          put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 1>(&a2, p, c + 2, o + 2, 0);
          put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 1>(&a3, p, c + 3, o + 3, 0);
          if (across) i -= 1;  // an odd row: its last pixel alone, then the next row
          continue;
        }
        const int d = x_step;
        int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3, e0 = b0, e1 = b1, e2 = b2, e3 = b3;
        for (int ky = ky0; ky < ky1; ++ky) {
          const int8_t* xp = base + (ky - ky0) * IW * C;
          const int8_t* wp = wb + (ky - ky0) * KW * 4;
          for (int kx = kx0; kx < kx1; ++kx, xp += C, wp += 4) {
            const int32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
            a0 += xp[0] * w0; a1 += xp[1] * w1; a2 += xp[2] * w2; a3 += xp[3] * w3;
            e0 += xp[d] * w0; e1 += xp[d + 1] * w1; e2 += xp[d + 2] * w2; e3 += xp[d + 3] * w3;
          }
        }
        const int32_t ch0[2] = {a0, e0}, ch1[2] = {a1, e1}, ch2[2] = {a2, e2}, ch3[2] = {a3, e3};
        put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch0, p, c, o, o_step);
        put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch1, p, c + 1, o + 1, o_step);
        put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch2, p, c + 2, o + 2, o_step);
        put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 2>(ch3, p, c + 3, o + 3, o_step);
      }
    }
    for (int r = 0; r < kRest; ++r) {  // the channels after the last full block, as the reference
      const int c = kBlocks * 4 + r;
      const int8_t* wc = w + kBlocks * KH * KW * 4 + r;
      for (int oy = oy0; oy < oy1; ++oy) {
        for (int ox = ox0; ox < ox1; ++ox) {
          const int8_t* base = in + ((oy * SH - PT) * IW + (ox * SW - PL)) * C + c;
          int32_t acc = p.bias[c];
          for (int ky = ky0; ky < ky1; ++ky) {
            for (int kx = kx0; kx < kx1; ++kx) {
              acc += (base[(ky * IW + kx) * C] + IN_OFFSET) * wc[(ky * KW + kx) * kRest];
            }
          }
          out[(oy * OW + ox) * C + c] = to_int8<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ>(acc, p, c);
        }
      }
    }
  }

  // Output rows [oy0, oy1), all sharing one window of kernel rows: the columns before kX0 and
  // from kX1 on one by one (their windows differ), the columns between as one segment or, for
  // inside rows, in pairs (tiles) with any odd one left as a segment.
  static void rows(const int8_t* in, int8_t* out, int oy0, int oy1, bool tiles, const int8_t* w,
                   const ChannelParams& p) {
    constexpr int x0 = kX0 < OW ? kX0 : OW;
    constexpr int x1 = kX1 > x0 ? kX1 : x0;
    for (int ox = 0; ox < x0; ++ox) segment(in, out, oy0, oy1, ox, ox + 1, w, p);
    int ox = x0;
    if (tiles) {
      for (int oy = oy0; oy < oy1; ++oy) {
        for (ox = x0; ox + 1 < x1; ox += 2) pair(in, out, oy, ox, w, p);
      }
    }
    if (ox < x1) segment(in, out, oy0, oy1, ox, x1, w, p);
    for (ox = x1; ox < OW; ++ox) segment(in, out, oy0, oy1, ox, ox + 1, w, p);
  }

  static void run(const int8_t* in, int8_t* out, const int8_t* w, const ChannelParams& p) {
    constexpr int y0 = kY0 < OH ? kY0 : OH;
    constexpr int y1 = kY1 > y0 ? kY1 : y0;
    for (int oy = 0; oy < y0; ++oy) rows(in, out, oy, oy + 1, false, w, p);
    if (y0 < y1) rows(in, out, y0, y1, true, w, p);
    for (int oy = y1; oy < OH; ++oy) rows(in, out, oy, oy + 1, false, w, p);
  }
};

// FULLY_CONNECTED, batch 1, weights zero point 0. Weights: [OUT/8 rounded up][IN][8]: every
// weight is read once, so 8 units share each input load.
template <int IN, int OUT, int32_t OUT_OFFSET, int32_t ACT_MIN, int32_t ACT_MAX, int RQ>
struct FullyConnected {
  static constexpr int kBlocks = (OUT + 7) / 8;

  static TFK_TILE void block8(const int8_t* in, const int8_t* wp, int b, const ChannelParams& params, int8_t* out) {
    // A local copy: the int8 output stores could alias params, which would then be re-read.
    const ChannelParams p = params;
    const int32_t* bf = p.bias_folded + b * 8;
    int32_t a0 = bf[0], a1 = bf[1], a2 = bf[2], a3 = bf[3], a4 = bf[4], a5 = bf[5], a6 = bf[6], a7 = bf[7];
    for (const int8_t* const end = in + IN; in != end; ++in, wp += 8) {
      const int32_t x = *in;
      a0 += x * wp[0]; a1 += x * wp[1]; a2 += x * wp[2]; a3 += x * wp[3];
      a4 += x * wp[4]; a5 += x * wp[5]; a6 += x * wp[6]; a7 += x * wp[7];
    }
    const int32_t acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    TFK_UNROLL(8)
    for (int j = 0; j < 8; ++j) {
      const int o = b * 8 + j;
      if (OUT % 8 != 0 && o >= OUT) break;
      put<OUT_OFFSET, ACT_MIN, ACT_MAX, RQ, 1>(acc + j, p, o, out + o, 0);
    }
  }

  static void run(const int8_t* in, int8_t* out, const int8_t* w, const ChannelParams& p) {
    for (int b = 0; b < kBlocks; ++b) block8(in, w + b * IN * 8, b, p, out);
  }
};

// ADD of two same-shape int8 tensors (reference_integer_ops::AddElementwise). Each input's
// rescaling depends on its int8 value only, so codegen tabulates it (256 int32 per input:
// MultiplyByQuantizedMultiplierSmallerThanOneExp((v + offset) << left_shift, m, s)), and Prepare
// checks the tables against TFLM's function; one rescaling per value remains.
struct AddParams {
  const int32_t* table1;  // indexed by the int8 value + 128
  const int32_t* table2;
  int32_t output_multiplier, output_shift, output_offset, act_min, act_max;
  int32_t requant_bias;  // kRequantMulh's B (output_offset * 2^S + 2^(S-1) + 1, S = 1 - output_shift)
};

template <int N, int RQ, bool SIGNED>
static inline void add(const int8_t* in1, const int8_t* in2, int8_t* out, const AddParams& p) {
  const int32_t* t1 = p.table1 + 128;
  const int32_t* t2 = p.table2 + 128;
  const int32_t m = p.output_multiplier, s = p.output_shift, b = p.requant_bias;
  for (int8_t* const end = out + N; out != end; ++out) {
    const int32_t sum = t1[*in1++] + t2[*in2++];
    int32_t v;
#if !TFLITE_SINGLE_ROUNDING
    if (RQ == kRequantMulh) {
      v = requantize_mulh<SIGNED>(sum, m, b, 1 - s);  // SIGNED: act_min < output_offset
    } else
#endif
    {
      v = (RQ != kRequantExact ? requantize_fast(sum, m, s) : requantize_smaller_than_one(sum, m, s)) +
          p.output_offset;
    }
    v = v < p.act_min ? p.act_min : v;
    v = v > p.act_max ? p.act_max : v;
    *out = static_cast<int8_t>(v);
  }
}

}  // namespace tfk

#endif  // TINYFACE_TF_KERNELS_IMPL_H
