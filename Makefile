# pocketlm: the single entry point. `make` builds build/pocketlm; see `make help`.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    = -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wcast-qual -Wpointer-arith -Wdouble-promotion -Werror
ALL_CFLAGS = $(WARN) $(CFLAGS) -Iinclude -Isrc -pthread
LDLIBS  = -lm -pthread
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
BUILD  ?= build

LIB_SRC  = $(wildcard src/*.c)
CLI_SRC  = $(wildcard cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test check san fuzz bench model ref loc clean help setup ci demo

all: $(BUILD)/pocketlm

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*.h cli/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libpocketlm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pocketlm: $(CLI_OBJ) $(BUILD)/libpocketlm.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libpocketlm.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libpocketlm.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libpocketlm.a $(LDLIBS)

# test: every tests/test_*.c binary, then the script tests; each exits non-zero on failure.
test: $(BUILD)/pocketlm $(TESTS)
	@BUILD=$(BUILD) sh tests/run.sh $(TESTS)

# san: the same tests under ASan + UBSan, in their own build directory.
san:
	$(MAKE) BUILD=build/san CFLAGS="-O1 -g $(SAN)" test

# fuzz: each libFuzzer target for FUZZ_SECONDS (default 20) seconds.
FUZZ_SECONDS ?= 20
fuzz:
	@sh tests/fuzz.sh $(FUZZ_SECONDS)

# check: the gate before every push, and what CI runs.
check: all test san fuzz

setup:
	@sh scripts/setup.sh

model:
	@sh scripts/get_model.sh

# ci: the README's test command and what .ci/run runs: install, fetch the model, check.
ci: setup model
	$(MAKE) check

MODEL ?= models/SmolLM2-135M-Instruct.Q4_1.gguf
# demo: the README's main command: build, fetch the model, paraphrase and generate on the CLI.
demo: setup model all
	@sh scripts/demo.sh $(MODEL)

bench: $(BUILD)/pocketlm
	@sh scripts/bench.sh

loc:
	@wc -l include/*.h src/*.[ch] cli/*.[ch] tests/*.[ch] | sort -n

clean:
	rm -rf build

help:
	@echo "targets: all demo test san fuzz check ci setup model bench loc clean"
