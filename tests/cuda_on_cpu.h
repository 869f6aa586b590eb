// Just enough of CUDA for core/fused/kernels.cu to compile as C++ and run on the CPU.
//
// A launch becomes one call with one block of one thread: the kernels' grid-stride loops then walk
// every element in order, and a warp reduction of one lane returns that lane's value (the shuffles
// bring zeros). Used by tests/test_fused_kernels.py with `g++ -include tests/cuda_on_cpu.h`.
#include <math.h>

struct neuraterm_dim3 { unsigned int x, y, z; };
static const neuraterm_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0};
static const neuraterm_dim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};

#define __global__
#define __device__
#define __forceinline__ inline

template <typename T>
static inline T __shfl_down_sync(unsigned int, T, int) { return T(0); }

template <typename T>
static inline T atomicAdd(T* address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}
