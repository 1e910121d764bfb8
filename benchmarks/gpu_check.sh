#!/usr/bin/env bash
# GPU check, one short script: the CUDA paths (bf16 autocast + channels-last, fp16 + GradScaler, pinned uint8
# batches, bf16 inference) of train and annotate on the default demo, then the throughput benchmarks on the GPU.
# Usage: OUT=<folder for logs> bash benchmarks/gpu_check.sh   (logs and metrics land in $OUT; runs in /tmp)
set -u
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
RUNS=/tmp/facemac-gpu; mkdir -p "$RUNS"
export FACEMAC_OUTPUTS=$RUNS/outputs FACEMAC_CACHE=$RUNS/cache PYTHONUNBUFFERED=1
W=$(( $(nproc) - 2 ))
step() { echo; echo "=== $1"; }
{
step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())"
step "demo data"
time python -m facemac.data.demo --out "$FACEMAC_CACHE" --workers "$W" | tail -3
step "train resnet18 @112, bf16 autocast, channels-last, 2 epochs"
time python train.py logger=none model=resnet18 model.input_size=112 data.num_workers="$W" data.batch_size=128 \
  train.epochs=2 train.progress=false hydra.run.dir="$RUNS/bf16" 2>&1 | grep -E "INFO|Error|rror:" | tail -8
cp "$RUNS/bf16/metrics.json" "$OUT/bf16_metrics.json" 2>/dev/null
step "train vit_s @112, fp16 + GradScaler, smoke"
python train.py logger=none model=vit_s model.input_size=112 train.precision=fp16 train.limit_batches=10 \
  train.epochs=1 data.num_workers="$W" train.progress=false hydra.run.dir="$RUNS/fp16" 2>&1 \
  | grep -E "INFO|Error|rror:" | tail -5
step "annotate the four demo targets on cuda (bf16)"
time python annotate.py logger=none ckpt="$RUNS/bf16/checkpoints/best.pt" annotate.num_workers="$W" \
  hydra.run.dir="$RUNS/ann" 2>&1 | grep -E "INFO|Error|rror:" | tail -6
python -m facemac.annotation.evaluate "$RUNS/ann" --min 0 | tail -6
step "annotation throughput (resnet18 @112, batch 256)"
python benchmarks/annotate_throughput.py --data demo --images 8000 --model resnet18 --input 112 --batch 256 \
  --workers "$W" --device cuda --amp bf16 --channels-last true 2>&1 | tail -12
step "training throughput (resnet18 @112, batch 128)"
python benchmarks/train_throughput.py --images 8000 --model resnet18 --input 112 --batch 128 --workers "$W" \
  --device cuda 2>&1 | tail -12
} 2>&1 | tee "$OUT/gpu_check.log"
