#!/bin/sh
# setup_ref.sh — install the PyTorch reference stack (oracle for tests/make_ref.py,
# scripts/ref_real.py, scripts/bench_torch.py) into the SYSTEM python /usr/bin/python3, and the
# peers that script tests check against: PEFT (tests/lora_peft.test.sh), the PyPI gguf reader
# (tests/onnx.test.sh, onnx_real.test.sh), sacrebleu (tests/bleu_sacrebleu.test.sh) and the openai
# client (tests/openai.test.sh).
# `make setup` runs it, so `make ci` runs those tests (about 1.5 min the first time: apt torch and
# pip; seconds when present). The generated fixtures in tests/ref/ are committed: `make test`
# does not need it otherwise. Idempotent; run as root on Debian 12. Only Debian and PyPI are used.
# Versions are pinned; tests/ref/README.md records them. torch is Debian's 1.13.1, which
# is why transformers/peft are pinned to releases that still support torch 1.13. peft 0.15 is the
# first with LoRA trainable_token_indices (tests/make_ref_lora.py); it runs on torch 1.13.
set -eu

PY=/usr/bin/python3
APT_PKGS="python3-torch libopenblas-dev python3-numpy python3-pip"
# PIP_PKGS need no torch. PIP_NODEPS declare `torch>=1.13.0`, which Debian's "1.13.0a0+gitunknown"
# (a pre-release) does not satisfy, so pip would pull a 5 GB CUDA torch from PyPI: install them
# with --no-deps (their other needs — numpy, psutil, pyyaml, packaging — are already present).
# openai: the official client that tests/openai.test.sh points at `pocketlm serve`.
# jinja2: renders the chat template in tests/openai_client.py, as transformers does.
PIP_PKGS="transformers==4.44.2 tokenizers==0.19.1 safetensors==0.4.5 huggingface_hub==0.36.2 gguf==0.10.0 sentencepiece==0.2.0
sacrebleu==2.6.0 openai==3.51.0 jinja2==3.1.4"
PIP_NODEPS="peft==0.15.2 accelerate==0.34.2"

# ---- apt: one call, so libopenblas-dev comes with torch (45x slower without it) ----
missing=""
for p in $APT_PKGS; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "setup_ref: apt installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PKGS
else
    echo "setup_ref: apt packages present"
fi

# ---- pip: pinned, into the system python ----
# one python call checks every pin (pip show per package costs a second each)
need_pip=0
# shellcheck disable=SC2086
$PY - $PIP_PKGS $PIP_NODEPS <<'EOF' || need_pip=1
import sys
from importlib.metadata import version, PackageNotFoundError
def have(spec):
    name, want = spec.split("==")
    try: return version(name) == want
    except PackageNotFoundError: return False
sys.exit(0 if all(have(s) for s in sys.argv[1:]) else 1)
EOF
if [ -z "$missing" ] && [ $need_pip -eq 0 ] && [ "${SETUP_REF_VERIFY:-0}" = 0 ]; then
    echo "setup_ref: all present (SETUP_REF_VERIFY=1 re-runs the checks)"
    exit 0
fi
if [ $need_pip -eq 1 ]; then
    echo "setup_ref: pip installing $PIP_PKGS $PIP_NODEPS"
    # shellcheck disable=SC2086
    $PY -m pip install -q --root-user-action=ignore --break-system-packages $PIP_PKGS
    # shellcheck disable=SC2086
    $PY -m pip install -q --root-user-action=ignore --break-system-packages --no-deps $PIP_NODEPS
else
    echo "setup_ref: pip packages present"
fi

# ---- verify ----
$PY - <<'EOF'
import torch, numpy, transformers, tokenizers, safetensors, peft, accelerate, gguf, sentencepiece, sacrebleu
from transformers import LlamaForCausalLM, LlamaConfig
from importlib.metadata import version
assert torch.__file__.startswith("/usr/lib/python3/dist-packages/"), \
    f"torch must be Debian's python3-torch, got {torch.__file__}"
for m in ["torch", "numpy", "transformers", "tokenizers", "safetensors", "huggingface_hub", "peft",
          "accelerate", "gguf", "sentencepiece", "sacrebleu"]:
    v = torch.__version__ if m == "torch" else version(m)
    print(f"setup_ref: {m} {v}")
cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, vocab_size=32)
m = LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    out = m(torch.tensor([[1, 2, 3]])).logits
assert out.shape == (1, 3, 32)
import os, time, warnings
# Debian torch calls the generic libblas.so.3, which the alternatives system points at OpenBLAS.
blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
a, b = torch.randn(576, 1536), torch.randn(1536, 512)
a @ b
t = time.perf_counter(); [a @ b for _ in range(10)]; dt = time.perf_counter() - t
gf = 10 * 2 * 576 * 1536 * 512 / dt / 1e9
print(f"setup_ref: libblas.so.3 -> {blas}; sgemm 576x1536x512 {gf:.0f} GFLOP/s")
# the reference BLAS is ~45x slower than OpenBLAS (~2 GFLOP/s here); 5 leaves room for a busy machine
assert "openblas" in blas and gf > 5, "slow BLAS: install libopenblas-dev (same apt call as torch)"
print("setup_ref: ok")
EOF
