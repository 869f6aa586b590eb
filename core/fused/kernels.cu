// The fused kernels of neuraterm's training step (loaded by cuda_ops.py through CuPy's RawModule).
//
// Every kernel walks its elements with a grid-stride loop and uses no shared memory, so the same
// source also compiles as plain C++ with tests/cuda_on_cpu.h, runs as a single "thread" on the CPU
// and is checked there against the NumPy ops. Each formula repeats the NumPy op's order of float32
// operations (see numpy_ops.py and the layers), so the two differ only by library rounding
// (expf, tanhf) and by the order of sums.
//
// Values that change from step to step (the batch's position in the epoch's order, Adam's step
// count, the learning rate) are read from device memory, never passed as arguments: a CUDA graph
// freezes arguments at capture.

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)blockDim.x * gridDim.x)

// counters[0]: position of the batch in the epoch's order; counters[1]: steps counted so far
// (the loss kernel counts the running step, so the optimizer sees this step's number).
#define CURSOR 0
#define STEPS 1

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// Activation codes, as in fused/__init__.py.
#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_LEAKY 2
#define ACT_TANH 3
#define ACT_SIGMOID 4
#define ACT_GELU 5
#define ACT_SILU 6
#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f
#define GELU_3C 0.134145f
#define LEAKY_SLOPE 0.01f

__device__ __forceinline__ float sigmoid_of(float z) {
    float h = z * 0.5f;
    return (tanhf(h) + 1.0f) * 0.5f;
}

__device__ __forceinline__ float act_forward(int act, float z) {
    switch (act) {
        case ACT_RELU: return z < 0.0f ? 0.0f : z;  // NaN stays NaN, like np.maximum
        case ACT_LEAKY: { float y = z * LEAKY_SLOPE; return z < y ? y : z; }
        case ACT_TANH: return tanhf(z);
        case ACT_SIGMOID: return sigmoid_of(z);
        case ACT_GELU: {
            float inner = tanhf(GELU_K * (z + GELU_C * z * z * z));
            return 0.5f * z * (1.0f + inner);
        }
        case ACT_SILU: return z * sigmoid_of(z);
        default: return z;
    }
}

// dL/dz from dL/da = g, the pre-activation z and the activation a.
__device__ __forceinline__ float act_backward(int act, float z, float a, float g) {
    switch (act) {
        case ACT_RELU: return g * (float)(a > 0.0f);
        case ACT_LEAKY: return g * ((float)(z > 0.0f) * (1.0f - LEAKY_SLOPE) + LEAKY_SLOPE);
        case ACT_TANH: return g * (1.0f - a * a);
        case ACT_SIGMOID: return g * a * (1.0f - a);
        case ACT_GELU: {
            float z2 = z * z;
            float inner = tanhf(GELU_K * (z + GELU_C * z2 * z));
            float d = 0.5f * (1.0f + inner) + 0.5f * z * (1.0f - inner * inner) * GELU_K * (1.0f + GELU_3C * z2);
            return g * d;
        }
        case ACT_SILU: {
            float s = sigmoid_of(z);
            return g * s * (1.0f + z * (1.0f - s));
        }
        default: return g;
    }
}

// The batch: rows order[cursor:cursor+rows] of the uint8 images, scaled to [0, 1] and optionally
// standardized per feature; their labels beside them.
extern "C" __global__ void gather_normalize(
        const unsigned char* __restrict__ images, const int* __restrict__ labels,
        const int* __restrict__ order, const long long* __restrict__ counters, int rows, int features,
        float scale, int standardize, const float* __restrict__ mean, const float* __restrict__ std,
        float* __restrict__ x, int* __restrict__ y) {
    long long start = counters[CURSOR];
    GRID_STRIDE(i, (long long)rows * features) {
        long long r = i / features;
        int c = (int)(i - r * features);
        long long src = order[start + r];
        float v = (float)images[src * features + c] * scale;
        if (standardize) v = (v - mean[c]) / std[c];
        x[i] = v;
        if (c == 0) y[r] = labels[src];
    }
}

// z += bias (row-broadcast), a = act(z); `a` may be `z` when backward needs only the output.
extern "C" __global__ void bias_activation(float* z, float* a, const float* __restrict__ bias,
                                           long long rows, int cols, int act) {
    GRID_STRIDE(i, rows * cols) {
        float zi = z[i] + bias[(int)(i % cols)];
        z[i] = zi;
        a[i] = act_forward(act, zi);
    }
}

// g = act'(z, a) * (g * mask): the dropout mask (if any) and the activation's derivative in one pass.
extern "C" __global__ void activation_backward(float* g, const float* __restrict__ z, const float* __restrict__ a,
                                               const float* __restrict__ mask, int has_mask, long long n, int act) {
    GRID_STRIDE(i, n) {
        float gi = g[i];
        if (has_mask) gi = gi * mask[i];
        g[i] = act_backward(act, z[i], a[i], gi);
    }
}

// splitmix64's finalizer: a bijection whose output bits all depend on every input bit.
__device__ __forceinline__ unsigned long long mix64(unsigned long long x) {
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Inverted dropout with a counter-based mask: a hash of (seed, step, element), so the masks need no
// generator state, replay correctly inside a graph and are the same after a resume.
extern "C" __global__ void dropout_forward(const float* __restrict__ a, float* __restrict__ out,
                                           float* __restrict__ mask, long long n, float p, float keep_scale,
                                           unsigned long long seed, const long long* __restrict__ counters) {
    unsigned long long base = mix64(seed ^ mix64((unsigned long long)counters[STEPS]));
    GRID_STRIDE(i, n) {
        unsigned long long h = mix64(base + (unsigned long long)i);
        float u = (float)(h >> 40) * (1.0f / 16777216.0f);  // 24 random bits on [0, 1)
        float m = u >= p ? keep_scale : 0.0f;
        mask[i] = m;
        out[i] = a[i] * m;
    }
}

// The output layer's bias, softmax cross-entropy forward and backward, one row per thread:
// logits += bias, grad = (softmax - onehot) * scale, and the batch's summed loss and number of correct
// predictions added to totals[0] and totals[1]. Nothing after this kernel reads the batch position, so
// it also closes the step's bookkeeping: the cursor moves past the batch, the step is counted (the
// optimizer then reads the count of this step) and the gradient-norm accumulator is cleared.
extern "C" __global__ void softmax_cross_entropy(float* __restrict__ logits, const float* __restrict__ bias,
                                                 const int* __restrict__ labels, float* __restrict__ grad,
                                                 int rows, int classes, float scale, double* totals,
                                                 long long* counters, float* sumsq) {
    double loss = 0.0, right = 0.0;
    GRID_STRIDE(r, rows) {
        float* z = logits + r * classes;
        float* d = grad + r * classes;
        for (int c = 0; c < classes; ++c) z[c] = z[c] + bias[c];
        float top = z[0];
        int best = 0;
        for (int c = 1; c < classes; ++c) if (z[c] > top) { top = z[c]; best = c; }
        float total = 0.0f;
        for (int c = 0; c < classes; ++c) { float e = expf(z[c] - top); d[c] = e; total += e; }
        for (int c = 0; c < classes; ++c) d[c] = d[c] / total;
        int y = labels[r];
        d[y] -= 1.0f;
        for (int c = 0; c < classes; ++c) d[c] *= scale;
        loss += (double)(logf(total) - (z[y] - top));
        right += (double)(best == y);
    }
    loss = warp_sum(loss);
    right = warp_sum(right);
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(&totals[0], loss);
        atomicAdd(&totals[1], right);
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        counters[CURSOR] += rows;
        counters[STEPS] += 1;
        sumsq[0] = 0.0f;
    }
}

// The gradient through a narrow layer into the one below, in one pass: for each element of the lower
// layer's output, g = sum_k grad_out[r, k] * weight[k, c] (the GEMM dz W, with `outputs` small, e.g. the
// classes), then the dropout mask and the lower activation's derivative. Saves a GEMM launch per step.
extern "C" __global__ void backprop_activation(const float* __restrict__ grad_out, const float* __restrict__ weight,
                                               const float* __restrict__ z, const float* __restrict__ a,
                                               const float* __restrict__ mask, int has_mask, long long rows,
                                               int width, int outputs, int act, float* __restrict__ grad_in) {
    GRID_STRIDE(i, rows * width) {
        long long r = i / width;
        int c = (int)(i - r * width);
        const float* g = grad_out + r * outputs;
        float s = 0.0f;
        for (int k = 0; k < outputs; ++k) s += g[k] * weight[k * width + c];
        if (has_mask) s = s * mask[i];
        grad_in[i] = act_backward(act, z[i], a[i], s);
    }
}

// out[0] += sum(x * x), for clipping by the global gradient norm (out is zeroed by the loss kernel).
extern "C" __global__ void sum_squares(const float* __restrict__ x, long long n, float* out) {
    float s = 0.0f;
    GRID_STRIDE(i, n) { float v = x[i]; s += v * v; }
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}

__device__ __forceinline__ float clip_factor(float clip_norm, const float* sumsq) {
    if (clip_norm <= 0.0f) return 1.0f;
    float f = clip_norm / (sqrtf(sumsq[0]) + 1e-6f);
    return f < 1.0f ? f : 1.0f;
}

// The gradient as every rule sees it: clipped, then the coupled L2 term on decayed parameters.
__device__ __forceinline__ float effective_grad(float g, float p, float clip, int clipping, int decayed, float l2) {
    if (clipping) g = g * clip;
    if (decayed && l2 != 0.0f) g = g + p * l2;
    return g;
}

// SGD, momentum and Nesterov in PyTorch's formulation; hyper[0] is the learning rate.
extern "C" __global__ void sgd_update(float* p, const float* __restrict__ g, float* velocity, long long n,
                                      long long n_decay, const double* __restrict__ hyper, float momentum,
                                      int nesterov, float l2, float clip_norm, const float* __restrict__ sumsq) {
    float neg_lr = (float)(-hyper[0]);
    float clip = clip_factor(clip_norm, sumsq);
    GRID_STRIDE(i, n) {
        float pi = p[i];
        float gi = effective_grad(g[i], pi, clip, clip_norm > 0.0f, i < n_decay, l2);
        if (momentum != 0.0f) {
            float v = velocity[i] * momentum + gi;
            velocity[i] = v;
            gi = nesterov ? gi + momentum * v : v;
        }
        p[i] = pi + gi * neg_lr;
    }
}

// Adam with bias correction (AdamW when weight_decay > 0); t = counters[1], this step's number.
extern "C" __global__ void adam_update(float* p, const float* __restrict__ g, float* m, float* v, long long n,
                                       long long n_decay, const double* __restrict__ hyper,
                                       const long long* __restrict__ counters, double beta1, double beta2,
                                       double eps, double weight_decay, float l2, float clip_norm,
                                       const float* __restrict__ sumsq) {
    double lr = hyper[0];
    double t = (double)counters[STEPS];
    double root_bc2 = sqrt(1.0 - pow(beta2, t));
    float eps_term = (float)(eps * root_bc2);
    float step_scale = (float)(-lr * root_bc2 / (1.0 - pow(beta1, t)));
    float decay = (float)(1.0 - lr * weight_decay);
    float b1 = (float)beta1, b2 = (float)beta2, c1 = (float)(1.0 - beta1), c2 = (float)(1.0 - beta2);
    float clip = clip_factor(clip_norm, sumsq);
    GRID_STRIDE(i, n) {
        float pi = p[i];
        int decayed = i < n_decay;
        float gi = effective_grad(g[i], pi, clip, clip_norm > 0.0f, decayed, l2);
        if (decayed && weight_decay != 0.0) pi = pi * decay;
        float mi = m[i] * b1 + gi * c1;
        float vi = v[i] * b2 + gi * gi * c2;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + mi / (sqrtf(vi) + eps_term) * step_scale;
    }
}

// RMSprop as PyTorch defines it (eps outside the square root, optional momentum).
extern "C" __global__ void rmsprop_update(float* p, const float* __restrict__ g, float* square_avg, float* velocity,
                                          long long n, long long n_decay, const double* __restrict__ hyper,
                                          double alpha, float eps, float momentum, float l2, float clip_norm,
                                          const float* __restrict__ sumsq) {
    float neg_lr = (float)(-hyper[0]);
    float a = (float)alpha, c = (float)(1.0 - alpha);
    float clip = clip_factor(clip_norm, sumsq);
    GRID_STRIDE(i, n) {
        float pi = p[i];
        float gi = effective_grad(g[i], pi, clip, clip_norm > 0.0f, i < n_decay, l2);
        float s = square_avg[i] * a + gi * gi * c;
        square_avg[i] = s;
        float u = gi / (sqrtf(s) + eps);
        if (momentum != 0.0f) {
            u = velocity[i] * momentum + u;
            velocity[i] = u;
        }
        p[i] = pi + u * neg_lr;
    }
}
