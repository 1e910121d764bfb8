#!/usr/bin/env bash
# GPU check, one short script (~7 min on an H200, inside 10): the CUDA paths (bf16 autocast + channels-last,
# fp16 + GradScaler, pinned uint8 batches, bf16 inference, nvJPEG decode + batched GPU warp, geometry: detect with
# MTCNN on the GPU) of train and annotate on the default demo, the GPU batch-path tests, then the throughput
# benchmarks on the GPU.
# Usage: OUT=<folder for logs> bash benchmarks/gpu_check.sh   (logs and metrics land in $OUT; runs in /tmp)
set -u
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
RUNS=/tmp/facemac-gpu; mkdir -p "$RUNS"
export FACEMAC_OUTPUTS=$RUNS/outputs FACEMAC_CACHE=$RUNS/cache PYTHONUNBUFFERED=1
W=$(( $(nproc) - 2 ))
T0=$(date +%s)
step() { echo; echo "=== $1  (t=$(( $(date +%s) - T0 )) s)"; }
{
step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, timm, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'timm', timm.__version__, torch.cuda.get_device_name())"
python -c "import simplejpeg" 2>/dev/null || pip install -q simplejpeg
python -c "import facenet_pytorch" 2>/dev/null || pip install -q --no-deps "facenet-pytorch==2.5.3"
step "GPU batch path tests: nvJPEG vs libjpeg, device batches on cuda vs the CPU path, torch vs OpenCV warp"
timeout 180 python -m pytest tests/test_gpu_batch.py -q -p no:cacheprovider 2>&1 | tail -4
step "demo data"
time python -m facemac.data.demo --out "$FACEMAC_CACHE" --workers "$W" | tail -3
step "train resnet18 @112, bf16 autocast, channels-last, 2 epochs"
time python train.py logger=none model=resnet18 model.input_size=112 data.num_workers="$W" data.batch_size=128 \
  train.epochs=2 train.progress=false hydra.run.dir="$RUNS/bf16" 2>&1 | grep -E "INFO|Error|rror:" | tail -8
cp "$RUNS/bf16/metrics.json" "$OUT/bf16_metrics.json" 2>/dev/null
step "train vit_s @112, fp16 + GradScaler, smoke"
timeout 120 python train.py logger=none model=vit_s model.input_size=112 train.precision=fp16 train.limit_batches=10 \
  train.epochs=1 data.num_workers="$W" train.progress=false hydra.run.dir="$RUNS/fp16" 2>&1 \
  | grep -E "INFO|Error|rror:" | tail -5
step "annotate the four demo targets on cuda (bf16, defaults: nvJPEG + GPU warp)"
time python annotate.py logger=none ckpt="$RUNS/bf16/checkpoints/best.pt" hydra.run.dir="$RUNS/ann" 2>&1 \
  | grep -E "INFO|Error|rror:" | tail -7
python -m facemac.annotation.evaluate "$RUNS/ann" --min 0 | tail -6
step "the same with CPU decode workers (annotate.gpu_decode=false): accuracy must match"
python annotate.py logger=none ckpt="$RUNS/bf16/checkpoints/best.pt" annotate.gpu_decode=false \
  hydra.run.dir="$RUNS/ann_cpu" 2>&1 | grep -E "annotated|Error|rror:" | tail -4
python -m facemac.annotation.evaluate "$RUNS/ann_cpu" --min 0 | tail -6
A="python benchmarks/annotate_throughput.py --data demo --images 8000 --batch 256 --device cuda"
step "geometry: detect on cuda (workers decode; MTCNN, warp and model on the GPU): tests, then loose demo photos \
detect-aligned vs aligned with their true landmarks"
timeout 120 python -m pytest tests/test_detect_annotate.py -q -p no:cacheprovider -k "cuda or engines" 2>&1 | tail -3
timeout 240 python benchmarks/detect_throughput.py --accuracy --ckpt "$RUNS/bf16/checkpoints/best.pt" --device cuda \
  --identities 40 2>&1 | tail -7
step "detect throughput on cuda, resnet18 @112: goal e2e >= 0.8 x detector only, >= 1.5 x naive per-image loop"
timeout 200 python benchmarks/detect_throughput.py --images 1024 --batch 256 --device cuda --model resnet18 \
  --naive 128 2>&1 | tail -6
step "annotation throughput, resnet18 @112, defaults (nvJPEG + GPU warp, verified): goal e2e >= 0.8 x model only"
timeout 150 $A --model resnet18 2>&1 | tail -10
step "annotation throughput, resnet18 @112, GPU decode without the worker-side strict check (annotate.gpu_verify=false)"
timeout 120 $A --model resnet18 --gpu-verify false --no-naive 2>&1 | tail -8
step "annotation throughput, resnet18 @112, CPU decode workers (annotate.gpu_decode=false, the old path)"
timeout 120 $A --model resnet18 --gpu-decode false --no-naive 2>&1 | tail -8
step "annotation throughput, vit_b @112, defaults: goal e2e >= 0.8 x model only"
timeout 150 $A --model vit_b 2>&1 | tail -10
step "training throughput (resnet18 @112, batch 128)"
timeout 150 python benchmarks/train_throughput.py --images 8000 --model resnet18 --batch 128 --workers "$W" \
  --device cuda 2>&1 | tail -12
step "done"
} 2>&1 | tee "$OUT/gpu_check.log"
