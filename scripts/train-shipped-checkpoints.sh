#!/usr/bin/env bash
# Reproduces the checkpoints shipped in denoisers/checkpoints/ from the data in ../shared.
# Every step is resumable (state in runs/<name>/): rerun the script after an interruption.
# Timings on a 2-core AVX512-BF16 CPU with bf16 autocast: see the training notes in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DSMOOTH_SHARED_DIR:-../shared}
DSMOOTH=${DSMOOTH:-.venv/bin/dsmooth}
OUT=denoisers/checkpoints
CIFAR_TRAIN=$SHARED/data/cifar10/train-jpeg.tar.gz
LOSSLESS=$SHARED/data/cifar10/test-lossless-1000.npz
TP=$SHARED/models/third-party/cifar10-resnet
OWN=cifar10-resnet20
ONLY=${1:-all}

step() {  # step NAME COMMAND...: run unless the checkpoint exists or another step was asked for
  local name=$1; shift
  [[ $ONLY == all || $ONLY == "$name" ]] || return 0
  [[ -f $OUT/$name.safetensors ]] && { echo "== $name: already trained"; return 0; }
  echo "== $name: $(date -u +%H:%M:%S)"
  "$@" --run-dir "runs/$name" --out "$OUT/$name.safetensors"
}

step $OWN $DSMOOTH train-classifier --data "$CIFAR_TRAIN" --validation "$LOSSLESS" \
  --depth 20 --epochs 30

for sigma in 0.25 0.12 0.5; do
  step unet-cifar10-s$sigma-mse $DSMOOTH train-denoiser --arch unet --sigma $sigma --objective mse \
    --data "$CIFAR_TRAIN" --validation "$LOSSLESS" --val-classifier "cifar-resnet56:$TP/resnet56-4bfd9763.th" \
    --epochs 15
done

for sigma in 0.25 0.12 0.5; do
  # Black-box Stab: surrogates only (our ResNet-20 and third-party ResNet-20/32/44), never the
  # ResNet-56 target that validates it.
  step unet-cifar10-s$sigma-stab-blackbox $DSMOOTH train-denoiser --arch unet --sigma $sigma \
    --objective mse+stab --init "$OUT/unet-cifar10-s$sigma-mse.safetensors" --lr 1e-4 --epochs 5 \
    --data "$CIFAR_TRAIN" --validation "$LOSSLESS" \
    --surrogate $OWN --surrogate "cifar-resnet20:$TP/resnet20-12fca82f.th" \
    --surrogate "cifar-resnet32:$TP/resnet32-d509ac18.th" --surrogate "cifar-resnet44:$TP/resnet44-014dd654.th" \
    --val-classifier "cifar-resnet56:$TP/resnet56-4bfd9763.th"
  # White-box Stab: through the target itself.
  step unet-cifar10-s$sigma-stab-whitebox-resnet56 $DSMOOTH train-denoiser --arch unet --sigma $sigma \
    --objective mse+stab --init "$OUT/unet-cifar10-s$sigma-mse.safetensors" --lr 1e-4 --epochs 5 \
    --data "$CIFAR_TRAIN" --validation "$LOSSLESS" --target "cifar-resnet56:$TP/resnet56-4bfd9763.th"
done

for sigma in 0.25 0.12 0.5; do
  step dncnn-cifar10-s$sigma-mse $DSMOOTH train-denoiser --arch dncnn --sigma $sigma --objective mse \
    --data "$CIFAR_TRAIN" --validation "$LOSSLESS" --val-classifier "cifar-resnet56:$TP/resnet56-4bfd9763.th" \
    --epochs 8
done

for sigma in 0.25 0.12; do
  step unet-imagenet-s$sigma-mse $DSMOOTH train-denoiser --arch unet --sigma $sigma --objective mse \
    --photos "$SHARED/data/imagenet-samples/train" --validation "$SHARED/data/imagenet-samples/images" \
    --crop 64 --steps-per-epoch 300 --batch-size 64 --epochs 10
done
