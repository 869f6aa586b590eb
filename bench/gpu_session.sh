#!/usr/bin/env bash
# Everything a lent GPU machine should run for the fused step, in one call (device time is scarce):
#   bash bench/gpu_session.sh        from the repository root, on the device machine
# Logs go to $OUT (the device tool brings that folder back) or /tmp/neuraterm-gpu.
set -uo pipefail
out="${OUT:-/tmp/neuraterm-gpu}"
mkdir -p "$out"
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/device.txt"
python3 -c "import cupy, torch; print('cupy', cupy.__version__, 'torch', torch.__version__)" | tee -a "$out/device.txt"
timeout 300 python3 -m pytest -q --maxfail=10 tests/test_gpu.py tests/test_fused_step.py tests/test_cuda_ops_on_cpu.py \
    tests/test_fused_kernels.py tests/test_engine.py 2>&1 | tee "$out/tests.txt" | tail -25
timeout 400 python3 bench/gpu_epoch.py --repeats 5 2>&1 | tee "$out/gpu_epoch.txt"
# layer health on the GPU: measured on its own thread, on the training's stream (quick and the EMNIST shape)
timeout 240 python3 bench/health_cost.py --presets quick,emnist --epochs 4 --repeats 2 --device gpu 2>&1 \
    | tee "$out/health_cost.txt" | tail -4
