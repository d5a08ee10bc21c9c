// Rotary position embedding, rotate-half layout (transformers' apply_rotary_pos_emb), applied in
// place. The cos/sin tables are supplied by the caller (YaRN scaling, including its attention
// factor, is already folded into them), in the dtype of x.
//
// x:       [B, H, S, D] with element strides (sb, sh, ss, 1): a transposed view of a projection
//          output works without a copy.
// cos/sin: [Bc, S, D] with element strides (cb, cs, 1); cb = 0 broadcasts one table over the batch.
//
// Forward, for i < D/2, with a = x[i], b = x[i + D/2] (each product rounded to T, as eager does):
//   x[i]       = a * cos[i]       - b * sin[i]
//   x[i + D/2] = b * cos[i + D/2] + a * sin[i + D/2]
// Backward (the transpose), applied in place to the gradient:
//   g[i]       = ga * cos[i]       + gb * sin[i + D/2]
//   g[i + D/2] = gb * cos[i + D/2] - ga * sin[i]
// Launch: any 1-D grid of blocks of at most QWEN25_ELEMENTWISE_THREADS; one thread per
// (b, h, s, i < D/2), grid-stride.

template <typename T, bool BACKWARD>
__device__ void rope_apply(T* __restrict__ x, const T* __restrict__ cos, const T* __restrict__ sin,
                           i64 B, i64 H, i64 S, int D, i64 sb, i64 sh, i64 ss, i64 cb, i64 cs) {
    const int half = D / 2;
    const i64 total = B * H * S * half;
    QWEN25_GRID_LOOP(idx, total) {
        const int i = (int)(idx % half);
        i64 rest = idx / half;
        const i64 s = rest % S;
        rest /= S;
        const i64 h = rest % H;
        const i64 b = rest / H;
        T* p = x + b * sb + h * sh + s * ss;
        const T* c = cos + b * cb + s * cs;
        const T* sn = sin + b * cb + s * cs;
        const float a = to_float(p[i]);
        const float bb = to_float(p[i + half]);
        const float c_lo = to_float(c[i]), c_hi = to_float(c[i + half]);
        const float s_lo = to_float(sn[i]), s_hi = to_float(sn[i + half]);
        float lo, hi;
        if (BACKWARD) {
            lo = round_to<T>(a * c_lo) + round_to<T>(bb * s_hi);
            hi = round_to<T>(bb * c_hi) - round_to<T>(a * s_lo);
        } else {
            lo = round_to<T>(a * c_lo) - round_to<T>(bb * s_lo);
            hi = round_to<T>(bb * c_hi) + round_to<T>(a * s_hi);
        }
        p[i] = from_float<T>(lo);
        p[i + half] = from_float<T>(hi);
    }
}

#define QWEN25_ROPE_ENTRY(T, SUFFIX)                                                               \
    extern "C" __global__ void __launch_bounds__(QWEN25_ELEMENTWISE_THREADS)                       \
    rope_fwd_##SUFFIX(T* x, const T* cos, const T* sin, i64 B, i64 H, i64 S, int D, i64 sb,        \
                      i64 sh, i64 ss, i64 cb, i64 cs) {                                            \
        rope_apply<T, false>(x, cos, sin, B, H, S, D, sb, sh, ss, cb, cs);                         \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ELEMENTWISE_THREADS)                       \
    rope_bwd_##SUFFIX(T* x, const T* cos, const T* sin, i64 B, i64 H, i64 S, int D, i64 sb,        \
                      i64 sh, i64 ss, i64 cb, i64 cs) {                                            \
        rope_apply<T, true>(x, cos, sin, B, H, S, D, sb, sh, ss, cb, cs);                          \
    }

QWEN25_ROPE_ENTRY(float, f32)
QWEN25_ROPE_ENTRY(bf16_t, bf16)
