#!/bin/sh
# setup.sh: install everything pocketlm's build, tests and demo need on a fresh Debian 12 machine,
# idempotently (run as root; a second run installs nothing): apt packages, the npm packages, and
# scripts/setup_ref.sh (Debian torch + pinned transformers/peft/gguf/sacrebleu, the peers of
# tests/lora_peft, onnx and bleu_sacrebleu; SETUP_REF=0 leaves it out, as `make demo` does). Not here: llama-cpp-python
# (scripts/setup_bench.sh, built from source in 5-10 min), which only tests/gguf_llamacpp.test.sh
# and the benchmarks need.
set -eu
cd "$(dirname "$0")/.."
# qemu-user: tests/onnx_avx2.test.sh runs the ONNX exports on an emulated AVX2-only CPU
pkgs="build-essential clang-14 libclang-rt-14-dev emscripten chromium unzip python3-pip python3-onnx \
hyperfine clang-format-14 ca-certificates gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
need=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
# node and npm may come from elsewhere than Debian (a newer nodejs conflicts with Debian's npm):
# install Debian's only when the commands are missing
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    echo "setup: apt-get install$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
# npm packages for the tests (exact versions from package-lock.json). --ignore-scripts: the
# onnxruntime-node postinstall tries a download that this network does not allow.
if [ -f package-lock.json ]; then
    stamp=node_modules/.package-lock.json
    if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
        echo "setup: npm ci"
        ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    fi
fi
if [ "${SETUP_REF:-1}" = 1 ]; then
    sh scripts/setup_ref.sh
fi
echo "setup: ok"
