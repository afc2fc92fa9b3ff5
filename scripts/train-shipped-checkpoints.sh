#!/usr/bin/env bash
# Reproduces the checkpoints shipped in denoisers/checkpoints/ from the data in ../shared.
# Every step is resumable (state in runs/<name>/): rerun the script after an interruption.
# `scripts/train-shipped-checkpoints.sh NAME` trains one checkpoint only.
# Schedules are short where a 2-core AVX2 CPU trained them (fine-tuning, --steps-per-epoch).
# Order: what the embedded default and the public-API demo need first, then the benchmark's
# sigma-0.25 rows (MSE at every sigma, Stab black-/white-box), then the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DSMOOTH_SHARED_DIR:-../shared}
DSMOOTH=${DSMOOTH:-.venv/bin/dsmooth}
OUT=denoisers/checkpoints
CIFAR_TRAIN=$SHARED/data/cifar10/train-jpeg.tar.gz
LOSSLESS=$SHARED/data/cifar10/test-lossless-1000.npz
PHOTOS=$SHARED/data/imagenet-samples
TP=$SHARED/models/third-party/cifar10-resnet
RESNET56="cifar-resnet56:$TP/resnet56-4bfd9763.th"
OWN=cifar10-resnet20
# Black-box Stab's surrogates: the project's ResNet-20 and the third-party ResNet-20/32/44, never
# the ResNet-56 target
SURROGATES=(--surrogate "$OWN" --surrogate "cifar-resnet20:$TP/resnet20-12fca82f.th"
  --surrogate "cifar-resnet32:$TP/resnet32-d509ac18.th"
  --surrogate "cifar-resnet44:$TP/resnet44-014dd654.th")
ONLY=${1:-all}

step() {  # step NAME COMMAND...: run unless the checkpoint exists or another step was asked for
  # (state in $RUNS/NAME: a checkpoint trained in stages gives each stage its own OUT and RUNS)
  local name=$1; shift
  [[ $ONLY == all || $ONLY == "$name" ]] || return 0
  [[ -f $OUT/$name.safetensors ]] && { echo "== $name: already trained"; return 0; }
  echo "== $name: $(date -u +%H:%M:%S)"
  "$@" --run-dir "${RUNS:-runs}/$name" --out "$OUT/$name.safetensors"
}

cifar_mse() {  # cifar_mse ARCH SIGMA EPOCHS
  step "$1-cifar10-s$2-mse" "$DSMOOTH" train-denoiser --arch "$1" --sigma "$2" --objective mse \
    --data "$CIFAR_TRAIN" --validation "$LOSSLESS" --val-classifier "$RESNET56" --epochs "$3"
}

cifar_mse_from() {  # cifar_mse_from SIGMA EPOCHS [FROM]: fine-tune the sigma-FROM U-Net (0.25)
  step "unet-cifar10-s$1-mse" "$DSMOOTH" train-denoiser --arch unet --sigma "$1" --objective mse \
    --init "${INIT:-$OUT}/unet-cifar10-s${3:-0.25}-mse.safetensors" --lr 5e-4 \
    --data "$CIFAR_TRAIN" --validation "$LOSSLESS" --val-classifier "$RESNET56" --epochs "$2"
}

photo_mse() {  # photo_mse SIGMA EPOCHS [--init ...]: random 64x64 crops of the ImageNet training photos
  local sigma=$1 epochs=$2; shift 2
  step "unet-imagenet-s$sigma-mse" "$DSMOOTH" train-denoiser --arch unet --sigma "$sigma" \
    --objective mse --photos "$PHOTOS/train" --crop 64 \
    --steps-per-epoch 250 --batch-size 64 --epochs "$epochs" "$@"
}

photo_more() {  # photo_more SIGMA INIT LR EPOCHS MINUTES: MSE to a plateau (or the time budget),
  # validated on 48 training photos held out (never the evaluation photos); one thread, bf16
  step "unet-imagenet-s$1-mse" env OMP_NUM_THREADS=1 "$DSMOOTH" train-denoiser --arch unet \
    --sigma "$1" --objective mse --photos "$PHOTOS/train" --holdout 48 --val-count 400 \
    --crop 64 --init "$2" --lr "$3" --epochs "$4" --steps-per-epoch 200 --batch-size 64 \
    --patience 4 --max-minutes "$5"
}

cifar_more() {  # cifar_more SIGMA INIT LR EPOCHS MINUTES [ARGS]: MSE to a plateau (or the time
  # budget), validated on 1,000 training images held out (never the test images); one thread, bf16
  local sigma=$1 init=$2 lr=$3 epochs=$4 minutes=$5; shift 5
  step "unet-cifar10-s$sigma-mse" env OMP_NUM_THREADS=1 "$DSMOOTH" train-denoiser --arch unet \
    --sigma "$sigma" --objective mse --init "$init" --lr "$lr" --data "$CIFAR_TRAIN" \
    --holdout 1000 --val-count 1000 --epochs "$epochs" --steps-per-epoch 200 --patience 4 \
    --max-minutes "$minutes" "$@"
}

stab_whitebox() {  # stab_whitebox SIGMA: Stab fine-tuning through the ResNet-56 target itself
  step "unet-cifar10-s$1-stab-whitebox-resnet56" "$DSMOOTH" train-denoiser --arch unet \
    --sigma "$1" --objective mse+stab --init "$OUT/unet-cifar10-s$1-mse.safetensors" --lr 1e-4 \
    --epochs 2 --steps-per-epoch 100 --data "$CIFAR_TRAIN" --validation "$LOSSLESS" \
    --target "$RESNET56"
}

stab_blackbox() {  # stab_blackbox SIGMA: through surrogates, never the ResNet-56 target
  step "unet-cifar10-s$1-stab-blackbox" "$DSMOOTH" train-denoiser --arch unet --sigma "$1" \
    --objective mse+stab --init "${INIT:-$OUT}/unet-cifar10-s$1-mse.safetensors" --lr 1e-4 --epochs 2 \
    --steps-per-epoch 100 --data "$CIFAR_TRAIN" --validation "$LOSSLESS" \
    --val-classifier "$RESNET56" "${SURROGATES[@]}"
}

step $OWN "$DSMOOTH" train-classifier --data "$CIFAR_TRAIN" --validation "$LOSSLESS" \
  --depth 20 --epochs 30
cifar_mse unet 0.25 15
# The first photo runs validated on the evaluation photos (before --holdout existed for photos).
OUT=runs/photo-first RUNS=runs/photo-first photo_mse 0.25 8 --validation "$PHOTOS/images"
cifar_mse_from 0.12 1
stab_whitebox 0.25
cifar_mse_from 0.5 1
# Black-box Stab at 0.25 to a plateau (#22; 2026-11-30, one thread of a Xeon with AMX, bf16): the
# paper's lower rate, validated through the target on the test images 500-999, which no benchmark
# certifies; stopped five epochs after its best (the 11th of 16, 38 min). It replaced the
# stab_blackbox schedule's (2 x 100 steps at lr 1e-4): 67.6 -> 70.2% there.
step unet-cifar10-s0.25-stab-blackbox env OMP_NUM_THREADS=1 "$DSMOOTH" train-denoiser \
  --arch unet --sigma 0.25 --objective mse+stab --init "$OUT/unet-cifar10-s0.25-mse.safetensors" \
  --lr 2e-5 --data "$CIFAR_TRAIN" --validation "$LOSSLESS" --val-skip 500 --val-count 500 \
  --val-classifier "$RESNET56" "${SURROGATES[@]}" --epochs 24 --steps-per-epoch 100 \
  --patience 5 --max-minutes 45
# The architecture comparison of the README: DnCNN-17 and the U-Net on one 200-step schedule from
# scratch. The U-Net reached 21.6 dB against DnCNN's 19.6 at a fifth of the FLOPs, so the U-Net is
# what ships for every sigma; these two stay in runs/compare.
mkdir -p runs/compare
for arch in dncnn unet; do
  OUT=runs/compare step "$arch-cifar10-s0.25-mse-200steps" "$DSMOOTH" train-denoiser \
    --arch "$arch" --sigma 0.25 --objective mse --data "$CIFAR_TRAIN" --validation "$LOSSLESS" \
    --val-classifier "$RESNET56" --epochs 1 --steps-per-epoch 200
done
# sigma 0.12 starts from the sigma-0.25 photo U-Net: a lower noise level is an easier task.
OUT=runs/photo-first RUNS=runs/photo-first photo_mse 0.12 2 \
  --init runs/photo-first/unet-imagenet-s0.25-mse.safetensors --lr 5e-4 --validation "$PHOTOS/images"
for sigma in 0.12 0.5; do stab_whitebox $sigma; stab_blackbox $sigma; done
# sigma 1.0, for the larger radii of the published rows (best over sigma there). White-box Stab
# at 1.0 on this schedule stayed at the MSE one's accuracy; the longer run below ships instead.
# (The first sigma-1.0 U-Net is in runs/s1-first: the shipped Stab one was fine-tuned from it.)
OUT=runs/s1-first RUNS=runs/s1-first INIT=denoisers/checkpoints cifar_mse_from 1 1 0.5
INIT=runs/s1-first stab_blackbox 1
# #22: the sigma-1.0 MSE U-Net to a plateau (2026-11-30, one thread of the AVX512-BF16 EPYC beside
# benchmarks): stopped on the held-out accuracy of the project's ResNet-20 after 8 epochs of
# 25,600, then on the held-out PSNR after 9 more at a lower rate
OUT=runs/s1-long RUNS=runs/s1-long cifar_more 1 runs/s1-first/unet-cifar10-s1-mse.safetensors \
  5e-4 30 85 --val-classifier $OWN
cifar_more 1 runs/s1-long/unet-cifar10-s1-mse.safetensors 3e-4 25 45 --min-delta 0.01
# ... and white-box Stab from it, validated through the target on 1,000 held-out training images
# (2026-11-30, one thread of an AVX2 EPYC, fp32; stopped by its 40-minute budget, two epochs
# after its best)
step unet-cifar10-s1-stab-whitebox-resnet56 env OMP_NUM_THREADS=1 "$DSMOOTH" train-denoiser \
  --arch unet --sigma 1 --objective mse+stab --init "$OUT/unet-cifar10-s1-mse.safetensors" \
  --lr 1e-4 --data "$CIFAR_TRAIN" --holdout 1000 --val-count 1000 --target "$RESNET56" \
  --epochs 12 --steps-per-epoch 100 --patience 3 --max-minutes 40
# #21: the sigma-0.25 photo U-Net continued an hour, and sigma 0.5 from it (2026-11-30, one
# thread of an AVX512-BF16 EPYC beside other work; stopped by the time budget) ...
SECOND=runs/photo-second
OUT=$SECOND RUNS=$SECOND photo_more 0.25 runs/photo-first/unet-imagenet-s0.25-mse.safetensors \
  3e-4 16 62
OUT=$SECOND RUNS=$SECOND photo_more 0.5 $SECOND/unet-imagenet-s0.25-mse.safetensors 5e-4 14 55
# ... then every photo U-Net once more (the next session, two runs side by side, one thread each)
photo_more 0.12 runs/photo-first/unet-imagenet-s0.12-mse.safetensors 3e-4 18 135
photo_more 0.5 $SECOND/unet-imagenet-s0.5-mse.safetensors 3e-4 13 95
photo_more 0.25 $SECOND/unet-imagenet-s0.25-mse.safetensors 2e-4 8 30
