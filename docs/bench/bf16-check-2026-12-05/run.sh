#!/usr/bin/env bash
# Issue #17 item 1: does bf16 autocast change a ResNet-20 `short` run beyond the fp32 seed noise?
# fp32 seed 0 exists (explorer/reference/cpu-2026-11-29-short.json, 15.99 %); this trains fp32 seed 1
# and bf16 seeds 0 and 1, one thread each, at nice 15 (below the campaign's nice 10).
cd /work/bf16
common=(--schedule short --pick 1 --set depth=20 --set dataset=folder:../shared/data/cifar10-jpeg.tar.gz --threads 1 --device cpu --cache-dir cache)
L=cache/bf16check
nice -n 15 .venv/bin/python -u -m trainers reference $L/fp32-s1.json "${common[@]}" --set seed=1 > $L/fp32-s1.log 2>&1 &
nice -n 15 .venv/bin/python -u -m trainers reference $L/bf16-s0.json "${common[@]}" --set seed=0 --set precision=bf16 > $L/bf16-s0.log 2>&1 &
nice -n 15 .venv/bin/python -u -m trainers reference $L/bf16-s1.json "${common[@]}" --set seed=1 --set precision=bf16 > $L/bf16-s1.log 2>&1 &
wait
