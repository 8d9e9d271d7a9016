# pocketlm: the single entry point. `make` builds build/pocketlm; `make help` lists the targets,
# one line each, from the `## ` comments on their rules (tests/make_help.test.sh checks that the
# README's table says the same).
CC      ?= cc
CFLAGS  ?= -O2 -g
# -ffp-contract=off: never fuse a multiply and an add the code writes apart (the kernels' bit-exact
# orders depend on it; GCC's -std=c11 default, but clang fuses by default and then the AVX-512 ops
# differ from the baseline's bits: test_ops)
WARN    = -std=c11 -ffp-contract=off -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
          -Wmissing-prototypes -Wcast-qual -Wpointer-arith -Wdouble-promotion -Werror
ALL_CFLAGS = $(WARN) $(CFLAGS) -Iinclude -Isrc -pthread
LDLIBS  = -lm -pthread
SAN     = -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all
BUILD  ?= build

LIB_SRC  = $(wildcard src/*.c)
CLI_SRC  = $(wildcard cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: web-model all format format-check test test-arm test-clang check san fuzz bench bench-onnx bench-train bench-web bench-gemm bench-serve eval model loc clean help setup ci demo wasm

all: $(BUILD)/pocketlm ## the default (plain `make`): `build/pocketlm` and `build/libpocketlm.a`

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*.h cli/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libpocketlm.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/pocketlm: $(CLI_OBJ) $(BUILD)/libpocketlm.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libpocketlm.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libpocketlm.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libpocketlm.a $(LDLIBS)

# test: every tests/test_*.c binary, then the script tests; each exits non-zero on failure.
test: $(BUILD)/pocketlm $(TESTS) ## unit tests (against PyTorch fixtures in `tests/ref/`), golden tokenizer tests, the script tests
	@BUILD=$(BUILD) SKIP="$(SKIP)" $(if $(SCRIPTS),SCRIPTS="$(SCRIPTS)") sh tests/run.sh $(TESTS)

# san: the tests under ASan + UBSan, in their own build directory: every C test but the real-model
# numerics (minutes under ASan, and covered by the same code on the tiny models), and the scripts
# that drive the binary with bad input or over the network.
san: ## the tests under ASan + UBSan (in `build/san/`)
	$(MAKE) BUILD=build/san CFLAGS="-O1 -g $(SAN)" SKIP="test_real" SCRIPTS="errors serve" test

# fuzz: each libFuzzer target for FUZZ_SECONDS (default 20) seconds.
FUZZ_SECONDS ?= 20
fuzz: ## each libFuzzer target for `FUZZ_SECONDS` (default 20)
	@MAKE="$(MAKE)" sh tests/fuzz.sh $(FUZZ_SECONDS)

# test-arm: the C tests cross-compiled for arm64 and run under qemu-aarch64 on CPU models with and
# without dotprod / i8mm, plus an arm64 clang-14 build (scripts/test_arm.sh); correctness only.
test-arm: ## the C tests cross-compiled for arm64 and run under qemu (NEON, dotprod and i8mm CPUs), plus an arm64 clang build
	@MAKE="$(MAKE)" BUILD=$(BUILD) sh scripts/test_arm.sh

# test-clang: the kernel tests built with clang-14 for this CPU (macOS builds with clang, whose code
# generation is its own), every path the CPU runs against the scalar reference.
CLANG_TESTS = $(addprefix build/clang/tests/,test_matmul test_matmul_backward test_ops test_quantize)
test-clang: ## the kernel tests built with clang-14 for this CPU, every path it runs
	@if command -v clang-14 >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory CC=clang-14 BUILD=build/clang $(CLANG_TESTS) && \
	    SCRIPTS= sh tests/run.sh $(CLANG_TESTS); \
	else echo "SKIP test-clang: clang-14 missing (make setup installs it)"; fi

# check: the gate before every push, and what CI runs.
check: all format-check test san fuzz test-arm test-clang ## format-check, test, san, fuzz, test-arm and test-clang: the gate before a push

# format: every C file but the generated tables laid out by .clang-format (clang-format-14);
# format-check fails on the first file that differs, naming it.
FORMAT_FILES = $(filter-out src/unicode_tables.h,$(wildcard src/*.[ch] cli/*.[ch] include/*.h tests/*.[ch] tests/fuzz/*.c web/*.c))
format: ## lay out every C file with `.clang-format` (clang-format-14)
	clang-format-14 -i $(FORMAT_FILES)

format-check: ## fail if a C file differs from `.clang-format`'s layout (part of `make check`)
	clang-format-14 --dry-run -Werror $(FORMAT_FILES)

# SETUP_REF=0: leave out scripts/setup_ref.sh (the PyTorch/PEFT/gguf/sacrebleu peers of the tests);
# the demo does not need them
SETUP_REF ?= 1
setup: ## install what the build, tests and demo need (apt, npm, `scripts/setup_ref.sh`); idempotent
	@SETUP_REF=$(SETUP_REF) sh scripts/setup.sh

model: ## fetch the real model (SmolLM2-135M-Instruct, Q4_1 GGUF) into `models/`
	@sh scripts/get_model.sh

# ci: the README's test command and what .ci/run runs: install, fetch the model, check.
ci: setup model ## setup, model, then check: what CI runs (`.ci/run`)
	$(MAKE) check

MODEL ?= models/SmolLM2-135M-Instruct.Q4_1.gguf
# web-model: the PAWS adapter merged into one q8_0 GGUF, the file the web app loads
web-model: $(BUILD)/pocketlm ## the merged fine-tuned model as q8_0 GGUF for the page (`build/paws-q8_0.gguf`)
	$(BUILD)/pocketlm export -m $(MODEL) --lora models/paws-lora --format gguf --quant q8_0 \
	    --out $(BUILD)/paws-q8_0.gguf --force

# demo: the README's main command: build, fetch the model, paraphrase on the CLI, then serve the page.
demo: SETUP_REF = 0
demo: setup model all wasm web-model ## the main job: build, fetch the model, paraphrase on the CLI, serve the page
	@sh scripts/demo.sh $(MODEL)

bench: $(BUILD)/pocketlm ## decode/prefill speed, load time and memory against llama.cpp and PyTorch (also on the AVX2 path), DRAM bandwidth and each decode as a share of its ceiling, into `benchmarks/history/`
	@sh scripts/bench.sh

# eval: the paraphraser's quality on PAWS test: copy, base, the old and the new adapter (build/eval/)
eval: $(BUILD)/pocketlm ## paraphrase quality on PAWS test (copy, base, the old adapter, the diversity adapter at several settings), into `eval/history/`
	@BUILD=$(BUILD) sh scripts/eval_paws.sh

# bench-onnx: export sizes, onnxruntime-node on the ONNX exports vs pocketlm
bench-onnx: $(BUILD)/pocketlm ## the ONNX/GGUF exports: sizes, onnxruntime-node against pocketlm, into `benchmarks/history/`
	@BUILD=$(BUILD) sh scripts/bench_onnx.sh

# bench-web: pocketlm wasm in Chromium and node vs onnxruntime-web/-node and native
bench-web: $(BUILD)/pocketlm wasm ## pocketlm wasm in Chromium and node against onnxruntime-web/-node and native, into `benchmarks/history/`
	@BUILD=$(BUILD) sh scripts/bench_web.sh

# bench-train: LoRA training throughput vs PyTorch + PEFT
bench-train: $(BUILD)/pocketlm ## LoRA training throughput against PyTorch + PEFT, into `benchmarks/history/`
	@BUILD=$(BUILD) sh scripts/bench_train.sh

# bench-gemm: f32 matmul at prefill shapes vs OpenBLAS sgemm (numpy), 1 thread
bench-gemm: ## f32 matmul at prefill shapes against OpenBLAS sgemm (numpy), 1 thread, into `benchmarks/history/`
	@BUILD=$(BUILD) sh scripts/bench_gemm.sh

# bench-serve: the server under 1, 4, 8, 16 concurrent clients vs llama-cpp-python's server
bench-serve: $(BUILD)/pocketlm ## `serve` under 1, 4, 8 and 16 concurrent clients (aggregate tok/s, p50/p99 latency and TTFT) against llama.cpp's `llama-server` (16 parallel slots; built from source by `LCP_SERVER=1 sh scripts/setup_bench.sh` on first use) and llama-cpp-python's server, then a 10-minute soak at 8 clients (RSS growth; `BENCH_SOAK_SECS`), into `benchmarks/history/`
	@BUILD=$(BUILD) sh scripts/bench_serve.sh

loc: ## lines of each source file, sorted
	@wc -l include/*.h src/*.[ch] cli/*.[ch] tests/*.[ch] | sort -n

clean: ## remove `build/`
	rm -rf build

help: ## this list
	@sed -n 's/^\([a-z][a-z-]*\):.*## \(.*\)$$/\1\t\2/p' $(firstword $(MAKEFILE_LIST)) | \
	    awk -F '\t' '{ printf "make %-12s %s\n", $$1, $$2 }'

# ---- wasm: build/web/, a servable directory (web/README in examples/node/README.md) ----
# The same src/*.c plus web/wasm.c, four times: pocketlm.mjs/.wasm single-threaded (any page) and
# pocketlm-mt.mjs/.wasm + worker with -pthread (pages with COOP/COEP headers, or node), each with
# SIMD128 only and with relaxed SIMD (pocketlm-relaxed.mjs, pocketlm-relaxed-mt.mjs: engines that
# refuse relaxed opcodes get the others; web/pocketlm.js decides with WebAssembly.validate). No
# -ffast-math. Debian's emcc needs NODE_PATH; never set EM_CACHE (its cache is prebuilt).
# The relaxed instructions are marker calls until scripts/wasm_relaxed.mjs rewrites the linked
# .wasm (src/matmul_wasm.c says why); a failed rewrite removes the .mjs, so make runs it again.
EMCC        = env NODE_PATH=/usr/share/nodejs emcc
WASM_DIR    = $(BUILD)/web
WASM_CFLAGS = $(WARN) -O3 -msimd128 -Iinclude -Isrc
# PTHREAD_POOL_SIZE: web workers started with the threaded module (pocketlm.js passes threads - 1)
WASM_POOL   = 'Module.pocketlmPoolSize||4'
WASM_LINK   = -O3 -msimd128 -sMODULARIZE -sEXPORT_ES6 -sEXPORT_NAME=createPocketLM \
              -sALLOW_MEMORY_GROWTH -sMAXIMUM_MEMORY=4GB \
              -sEXPORTED_FUNCTIONS=_malloc,_free,_plm_kernel_path,_plm_cpu_features \
              -sEXPORTED_RUNTIME_METHODS=FS,UTF8ToString,stringToUTF8,lengthBytesUTF8 -lm
WASM_MT     = -pthread -sPTHREAD_POOL_SIZE=$(WASM_POOL)
WASM_RLX    = -mrelaxed-simd
WASM_RLINK  = --js-library scripts/wasm_relaxed_lib.js
WASM_SRC    = $(LIB_SRC) web/wasm.c
WASM_HDR    = $(wildcard include/*.h src/*.h)
WASM_PATCH  = node scripts/wasm_relaxed.mjs $@ || { rm -f $@; exit 1; }

$(BUILD)/wasm/st/%.o: %.c $(WASM_HDR)
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_CFLAGS) -c $< -o $@

$(BUILD)/wasm/mt/%.o: %.c $(WASM_HDR)
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_CFLAGS) -pthread -c $< -o $@

$(BUILD)/wasm/rst/%.o: %.c $(WASM_HDR)
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_CFLAGS) $(WASM_RLX) -c $< -o $@

$(BUILD)/wasm/rmt/%.o: %.c $(WASM_HDR)
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_CFLAGS) $(WASM_RLX) -pthread -c $< -o $@

$(WASM_DIR)/pocketlm.mjs: $(WASM_SRC:%.c=$(BUILD)/wasm/st/%.o)
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_LINK) -o $@ $^

$(WASM_DIR)/pocketlm-mt.mjs: $(WASM_SRC:%.c=$(BUILD)/wasm/mt/%.o)
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_LINK) $(WASM_MT) -o $@ $^

$(WASM_DIR)/pocketlm-relaxed.mjs: $(WASM_SRC:%.c=$(BUILD)/wasm/rst/%.o) scripts/wasm_relaxed_lib.js scripts/wasm_relaxed.mjs
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_LINK) $(WASM_RLX) $(WASM_RLINK) -o $@ $(filter %.o,$^)
	$(WASM_PATCH)

$(WASM_DIR)/pocketlm-relaxed-mt.mjs: $(WASM_SRC:%.c=$(BUILD)/wasm/rmt/%.o) scripts/wasm_relaxed_lib.js scripts/wasm_relaxed.mjs
	@mkdir -p $(dir $@)
	$(EMCC) $(WASM_LINK) $(WASM_RLX) $(WASM_MT) $(WASM_RLINK) -o $@ $(filter %.o,$^)
	$(WASM_PATCH)

WASM_MODS = $(addprefix $(WASM_DIR)/pocketlm,.mjs -mt.mjs -relaxed.mjs -relaxed-mt.mjs)
wasm: $(WASM_MODS) web/pocketlm.js web/pocketlm.d.ts web/package.json ## `build/web/`: the WebAssembly modules (SIMD128 and relaxed SIMD, single-thread and threaded) and their JS API
	cp web/pocketlm.js web/pocketlm.d.ts web/package.json $(WASM_DIR)/
	for b in pocketlm-mt pocketlm-relaxed-mt; do \
	    cp $(WASM_DIR)/$$b.worker.js $(WASM_DIR)/$$b.worker.cjs; done # for node: CommonJS
