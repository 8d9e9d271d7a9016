#!/bin/sh
# fuzz.sh [SECONDS]: build each tests/fuzz_*.c as a libFuzzer target (clang-14, ASan + UBSan) into
# build/fuzz/, seed its corpus with small valid inputs, and run it for SECONDS (default 20). The
# library is built once, instrumented, by the Makefile's rules into build/fuzz/lib/ (in parallel,
# only what changed); each target links to it.
# Exits non-zero when a target fails to build or finds a crash (the reproducer is kept in build/fuzz/).
set -u
SECS=${1:-20}
CC=${FUZZ_CC:-clang-14}
OUT=build/fuzz
cd "$(dirname "$0")/.."
mkdir -p "$OUT"

# ---- seeds: small valid files of each format ----
seed() { # seed DIR NAME: the seed files for target NAME into DIR
    mkdir -p "$1"
    case $2 in
    fuzz_json)
        printf '{"a": [1, 2.5e-3, true, null, "x\\u00e9"], "b": {"c": -1}}' >"$1/obj.json"
        for f in tests/ref/*/config.json; do [ -f "$f" ] && cp "$f" "$1/$(basename "$(dirname "$f")").json"; done
        ;;
    fuzz_safetensors)
        python3 - "$1" <<'PY'
import struct, sys, json
def st(path, tensors, meta=True):
    h, data = {}, b""
    if meta: h["__metadata__"] = {"format": "pt"}
    for name, dtype, shape, size in tensors:
        n = 1
        for s in shape: n *= s
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n * size]}
        data += bytes((i * 37) % 256 for i in range(n * size))
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
st(sys.argv[1] + "/a.safetensors", [("w", "F32", [2, 3], 4), ("b", "BF16", [4], 2), ("h", "F16", [3], 2)])
st(sys.argv[1] + "/b.safetensors", [("i", "I64", [2], 8)], meta=False)
PY
        ;;
    fuzz_gguf)
        python3 - "$1" <<'PY'
import struct, sys
def s(x): x = x.encode(); return struct.pack("<Q", len(x)) + x
kv = [s("general.architecture") + struct.pack("<I", 8) + s("llama"),
      s("llama.block_count") + struct.pack("<II", 4, 2),
      s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + s("a") + s("b") + s("ab"),
      s("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, 3) + struct.pack("<iii", 1, 1, 3)]
# (ggml type, ne[0], bytes of one row): F32, F16, Q8_0, Q4_0, Q4_1, BF16, Q5_0, Q5_1, Q2_K..Q6_K
types = [(0, 32, 4 * 32), (1, 32, 2 * 32), (8, 32, 34), (2, 32, 18), (3, 32, 20), (30, 32, 2 * 32),
         (6, 32, 22), (7, 32, 24), (10, 256, 84), (11, 256, 110), (12, 256, 144), (13, 256, 176),
         (14, 256, 210)]
infos, off = b"", 0
for k, (t, ne0, size) in enumerate(types):
    infos += s("t%d" % k) + struct.pack("<IQQ", 2, ne0, 1) + struct.pack("<IQ", t, off)
    off += (size + 31) // 32 * 32
head = b"GGUF" + struct.pack("<IQQ", 3, len(types), len(kv)) + b"".join(kv) + infos
head += b"\0" * (-len(head) % 32)
open(sys.argv[1] + "/a.gguf", "wb").write(head + bytes((i * 13) % 256 for i in range(off)))
# a SentencePiece tokenizer: model "llama", scores, the 256 byte fallback tokens; no tensors
toks = ["a", "b", "\u2581", "\u2581b", "a\u2581b"] + ["<0x%02X>" % i for i in range(256)]
n = len(toks)
spm = [s("tokenizer.ggml.model") + struct.pack("<I", 8) + s("llama"),
       s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, n) + b"".join(s(t) for t in toks),
       s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, n) + struct.pack("<%df" % n, *range(n)),
       s("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, n) +
       struct.pack("<%di" % n, *([1] * 5 + [6] * 256))]
open(sys.argv[1] + "/b.gguf", "wb").write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(spm)) + b"".join(spm))
PY
        ;;
    fuzz_config)
        for d in tests/ref/*/; do [ -f "$d/config.json" ] && cp "$d/config.json" "$1/$(basename "$d").json"; done
        ;;
    fuzz_request)
        printf '{"text": "The company moved its headquarters from Boston to New York .", "diversity": 0.5}' >"$1/paraphrase.json"
        printf '{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, "stop": ["\\n", "."], "logprobs": 2, "n": 2, "stream": false}' >"$1/completion.json"
        printf '{"model": "model.gguf", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \\u00e9"}], "top_p": 0.9, "seed": 7, "stream": true, "stream_options": {"include_usage": true}}' >"$1/chat.json"
        ;;
    fuzz_checkpoint) # the target writes it: a 2-step run's checkpoint files joined (on an empty input)
        : >"$OUT/empty" && FUZZ_SEEDS="$1" "$OUT/fuzz_checkpoint" "$OUT/empty" >"$OUT/fuzz_checkpoint.seed.log" 2>&1
        ;;
    fuzz_model_id)
        printf 'model.gguf\0model.gguf:paws-lora' >"$1/adapter"
        printf 'model.gguf\0model.gguf' >"$1/base"
        ;;
    esac
}

LIB=$OUT/lib/libpocketlm.a
if ! ${MAKE:-make} -s -j"$(nproc)" CC="$CC" BUILD="$OUT/lib" \
    CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
    "$LIB" >"$OUT/lib.build.log" 2>&1; then
    echo "fuzz: the instrumented library failed to build (see $OUT/lib.build.log)"
    exit 1
fi

# fuzz_one SRC: build, seed and run one target; prints its result; non-zero when it failed
fuzz_one() {
    name=$(basename "$1" .c)
    bin=$OUT/$name
    if [ "$name" = fuzz_request ] && [ ! -f "${FUZZ_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}" ]; then
        echo "SKIP $name: models/SmolLM2-135M-Instruct.Q4_1.gguf missing (install with: make model)"
        return 0
    fi
    if ! $CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Isrc \
        "$1" "$LIB" -lm -pthread -o "$bin" 2>"$OUT/$name.build.log"; then
        echo "$name: build failed (see $OUT/$name.build.log)"
        return 1
    fi
    corpus=$OUT/corpus_$name
    seed "$corpus" "$name"
    if "$bin" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$OUT/$name-" "$corpus" >"$OUT/$name.log" 2>&1; then
        echo "$name: ok ($(grep -c . "$OUT/$name.log") log lines, $(ls "$corpus" | wc -l) corpus files)"
    else
        echo "$name: FAILED (see $OUT/$name.log)"
        tail -n 30 "$OUT/$name.log"
        return 1
    fi
}

# The targets run in one lane a core (a libFuzzer run uses one), each for SECS seconds; lane k takes
# every LANES-th target from the k-th. The results are printed in the targets' order at the end.
LANES=$(nproc)
set -- tests/fuzz_*.c
rm -f "$OUT"/*.result "$OUT"/*.failed
k=0
while [ $k -lt "$LANES" ]; do
    (
        i=0
        for src in "$@"; do
            r=$OUT/$(basename "$src" .c)
            [ $((i % LANES)) = $k ] && { fuzz_one "$src" >"$r.result" 2>&1 || touch "$r.failed"; }
            i=$((i + 1))
        done
    ) &
    k=$((k + 1))
done
wait
fail=0
for src in "$@"; do
    r=$OUT/$(basename "$src" .c)
    cat "$r.result"
    [ ! -f "$r.failed" ] || fail=1
done
exit $fail
