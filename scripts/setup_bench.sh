#!/bin/sh
# setup_bench.sh — install the llama.cpp peer for `make bench`: llama-cpp-python built from its
# PyPI source package (never a prebuilt wheel, never committed) into the system python
# /usr/bin/python3, with a native CPU build of the llama.cpp it vendors (no BLAS, no curl, no
# llguidance, no llava: nothing in its CMake build reaches the network or git).
# Idempotent: does nothing when the pinned version already imports (and the AVX2 variant below
# does). Run as root on Debian 12.
# The first version in LCP_VERSIONS that builds is kept; BENCHMARKS.md records which.
# Only Debian and PyPI are used. Takes ~5-10 min the first time on 2 cores.
set -eu

PY=/usr/bin/python3
LCP_VERSIONS=${LCP_VERSIONS:-"0.3.16 0.3.9 0.2.90"}
APT_PKGS="cmake build-essential python3-dev python3-pip python3-numpy time curl ca-certificates"

missing=""
for p in $APT_PKGS; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "setup_bench: apt installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PKGS
fi

# The AVX2 variant (LCP_AVX2=1, the default): the same llama-cpp-python built a second time with
# GGML_NATIVE=OFF and only AVX2/FMA/F16C/BMI2 (no AVX-512, no AVX-VNNI), into LCP_AVX2_DIR (a
# --target directory outside the tree, put on PYTHONPATH by bench.sh), so that llama.cpp can be
# compared with pocketlm's PLM_ISA=avx2 path on the same AVX-512 machine. Another ~5-10 min.
LCP_AVX2=${LCP_AVX2:-1}
LCP_AVX2_DIR=${LCP_AVX2_DIR:-/usr/local/lib/pocketlm-bench/llama-cpp-avx2}
build_avx2() {    # build_avx2 VERSION: the AVX2 variant into LCP_AVX2_DIR
    [ "$LCP_AVX2" = 1 ] || return 0
    if PYTHONPATH=$LCP_AVX2_DIR $PY -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$1' or b'AVX512 = 1' in llama_cpp.llama_print_system_info())" 2>/dev/null; then
        echo "setup_bench: llama-cpp-python $1 AVX2 variant present in $LCP_AVX2_DIR"
        return 0
    fi
    echo "setup_bench: building the AVX2 variant of llama-cpp-python==$1 into $LCP_AVX2_DIR"
    rm -rf "$LCP_AVX2_DIR"
    CMAKE_ARGS="$CMAKE_COMMON -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_CPU_ALL_VARIANTS=OFF" \
    $PY -m pip install -q --root-user-action=ignore --break-system-packages --no-cache-dir --no-deps \
        --no-binary llama-cpp-python \
        --target "$LCP_AVX2_DIR" "llama-cpp-python==$1" &&
    PYTHONPATH=$LCP_AVX2_DIR $PY -c 'import llama_cpp; print("setup_bench: AVX2 variant", llama_cpp.__version__, llama_cpp.llama_print_system_info().decode())' ||
    { echo "setup_bench: the AVX2 variant did not build: bench.sh skips llama.cpp/avx2" >&2; rm -rf "$LCP_AVX2_DIR"; }
    return 0
}

# GGML_NATIVE: -march=native (AVX-512, VNNI, BF16 on this Zen 4). LLAMA_CURL/LLGUIDANCE off: no
# downloads at build time. LLAVA_BUILD off: the multimodal library is not needed and doubles the
# build. Tests/examples/server off for the same reason.
CMAKE_COMMON="-DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF \
-DLLAMA_CURL=OFF -DLLAMA_LLGUIDANCE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
export FORCE_CMAKE=1

# llama_server VERSION (LCP_SERVER=1, which bench_serve.sh sets): llama.cpp's own server,
# llama-server (parallel slots, continuous batching: the peer of `make bench-serve`), built natively
# and statically from the llama.cpp that llama-cpp-python VERSION vendors: its PyPI source package,
# found in PyPI's simple index and checked against the sha256 the index gives, into
# LCP_SERVER_DIR/bin. Another ~5-10 min the first time.
LCP_SERVER=${LCP_SERVER:-0}
LCP_SERVER_DIR=${LCP_SERVER_DIR:-/usr/local/lib/pocketlm-bench/llama-server}
llama_server() {
    [ "$LCP_SERVER" = 1 ] || return 0
    if [ -x "$LCP_SERVER_DIR/bin/llama-server" ]; then
        echo "setup_bench: llama-server present in $LCP_SERVER_DIR"
        return 0
    fi
    echo "setup_bench: building llama-server from llama-cpp-python==$1's llama.cpp into $LCP_SERVER_DIR"
    tmp=$(mktemp -d)
    url=$(curl -fsS https://pypi.org/simple/llama-cpp-python/ |
        grep -o "https://[^\"#]*/llama_cpp_python-$1\.tar\.gz#sha256=[0-9a-f]*" | head -n 1) || url=
    if [ -n "$url" ] && curl -fsS -o "$tmp/src.tar.gz" "${url%%#*}" &&
        echo "${url##*sha256=}  $tmp/src.tar.gz" | sha256sum -c - >/dev/null &&
        tar xzf "$tmp/src.tar.gz" -C "$tmp" &&
        cmake -S "$tmp/llama_cpp_python-$1/vendor/llama.cpp" -B "$tmp/build" -DGGML_NATIVE=ON \
            -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
            $(echo "$CMAKE_COMMON" | sed 's/-DLLAMA_BUILD_SERVER=OFF//') >/dev/null &&
        cmake --build "$tmp/build" --target llama-server -j "$CMAKE_BUILD_PARALLEL_LEVEL" >/dev/null &&
        install -D "$tmp/build/bin/llama-server" "$LCP_SERVER_DIR/bin/llama-server"; then
        echo "setup_bench: llama-server built"
    else
        echo "setup_bench: llama-server did not build: bench-serve runs without it" >&2
    fi
    rm -rf "$tmp"
    return 0
}

# server_extras: what `python3 -m llama_cpp.server` needs (the "server" extra of its metadata),
# for `make bench-serve`; plain PyPI packages, no build
server_extras() {
    $PY -c 'import llama_cpp.server.app' 2>/dev/null && return 0
    echo "setup_bench: installing llama-cpp-python's server extras (make bench-serve)"
    $PY -m pip install -q --root-user-action=ignore --break-system-packages "uvicorn>=0.22.0" \
        "fastapi>=0.100.0" "pydantic-settings>=2.0.1" "sse-starlette>=1.6.1" \
        "starlette-context>=0.3.6,<0.4" "PyYAML>=5.1" ||
        echo "setup_bench: the server extras did not install: bench-serve runs without its peer" >&2
    return 0
}

have=$($PY -m pip show llama-cpp-python 2>/dev/null | sed -n 's/^Version: //p')
if [ -n "$have" ] && $PY -c 'import llama_cpp' 2>/dev/null; then
    for v in $LCP_VERSIONS; do
        if [ "$have" = "$v" ]; then
            echo "setup_bench: llama-cpp-python $have present"
            build_avx2 "$have"
            server_extras
            llama_server "$have"
            exit 0
        fi
    done
fi

export CMAKE_ARGS="-DGGML_NATIVE=ON $CMAKE_COMMON"

for v in $LCP_VERSIONS; do
    echo "setup_bench: building llama-cpp-python==$v from source (CMAKE_ARGS=$CMAKE_ARGS)"
    if $PY -m pip install -q --root-user-action=ignore --break-system-packages --no-cache-dir \
        --no-binary llama-cpp-python "llama-cpp-python==$v"; then
        if $PY -c 'import llama_cpp; print("setup_bench: llama_cpp", llama_cpp.__version__)'; then
            $PY -c 'import llama_cpp; print("setup_bench: system_info", llama_cpp.llama_print_system_info().decode())'
            build_avx2 "$v"
            server_extras
            llama_server "$v"
            exit 0
        fi
    fi
    echo "setup_bench: llama-cpp-python==$v failed, trying the next version" >&2
done
echo "setup_bench: no llama-cpp-python version built (tried $LCP_VERSIONS)" >&2
exit 1
