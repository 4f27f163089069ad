# phi: make (phi + quant), make demo, make test, make install / uninstall, make static, make bench, make bench-quant, make asan, make fuzz, make arm-test,
# make CC=aarch64-linux-gnu-gcc (static ARM binaries in build-aarch64-linux-gnu/)
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Wshadow -Wno-unused-parameter -I.
LDLIBS  += -lm -lpthread

# Cross builds for ARM boards: static binaries (copy one file to the board), own build folder.
ifneq (,$(findstring aarch64,$(CC))$(findstring arm-linux,$(CC))$(findstring riscv64,$(CC)))
LDFLAGS += -static
BUILD   ?= build-$(shell $(CC) -dumpmachine)
BIN     ?= $(BUILD)
endif
BUILD   ?= build
BIN     ?= .

# No BLAS: every matrix product is phi's own (int8 panel tiles for the quantized types, which
# sgemm cannot run without first expanding the weights to f32: 4-8x the bytes per token).
ifdef BLAS
$(error BLAS=1 is not an option: phi links only libc, libm and pthreads (see docs/PORTING.md))
endif

LIB_SRC  := $(sort $(wildcard base/*.c kernels/*.c tokenizer/*.c model/*.c convert/*.c app/*.c api/*.c server/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

all: $(BIN)/phi $(BIN)/quant $(BIN)/phi-server examples

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# 32-bit ARM: the NEON kernels alone are built for NEON + VFPv4 (chosen at run time from HWCAP,
# kernels/dispatch.c); everything else keeps the target's baseline (Debian armhf: VFPv3-D16).
ifneq (,$(filter arm%,$(shell $(CC) -dumpmachine 2>/dev/null)))
$(BUILD)/kernels/arm_neon.o: CFLAGS += -mfpu=neon-vfpv4 -mfp16-format=ieee
endif

# ZMM_EMU=1 (make zmm-emu-test): the AVX-512 and AMX kernel files and x86_avx2.c's AVX-VNNI table on
# emulated intrinsics (tests/zmm_emu.h), the CPU check claiming both: tested on any x86-64 with AVX2.
ifeq ($(ZMM_EMU),1)
$(addprefix $(BUILD)/kernels/,x86_avx512.o x86_avx512_k.o x86_avx512_kp.o x86_amx.o): CFLAGS += -include tests/zmm_emu.h -Og -ffp-contract=off
$(BUILD)/kernels/x86_avx2.o: CFLAGS += -include tests/zmm_emu.h
$(BUILD)/kernels/dispatch.o $(BUILD)/kernels/peak.o: CFLAGS += -DPHI_ZMM_EMU
endif

$(BUILD)/libphi.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# --version: `git describe` at build time; "unknown" outside git (a tarball)
PHI_VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/phi.o: CFLAGS += -DPHI_GIT_VERSION='"$(PHI_VERSION)"' -DPHI_CFLAGS='"$(subst ",,$(OPT))"'
$(BUILD)/phi.o: $(BUILD)/version-stamp

# phi.o is rebuilt when the version string changes
$(BUILD)/version-stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PHI_VERSION)' | cmp -s - $@ || echo '$(PHI_VERSION)' > $@
FORCE:

$(BIN)/phi: $(BUILD)/phi.o $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/quant: $(BUILD)/quant.o $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/phi-server: $(BUILD)/phi-server.o $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The library's examples (phi.h + libphi.a only).
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
$(BUILD)/examples/%: examples/%.c phi.h $(BUILD)/libphi.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libphi.a $(LDLIBS)
examples: $(EXAMPLES)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(TEST_BIN)

# The suite: every tests/test_* program and tests/*.sh script; closing line 'N passed, N failed, N skipped'.
test: all tests
	@BUILD=$(BUILD) PHI=./phi QUANT=./quant sh tests/run.sh

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build folder.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    PHI_EXE_SUFFIX=-asan all-asan

all-asan: $(BUILD)/phi.o $(BUILD)/quant.o $(BUILD)/phi-server.o $(BUILD)/libphi.a tests examples
	$(CC) $(CFLAGS) -o $(BUILD)/phi $(BUILD)/phi.o $(BUILD)/libphi.a $(LDLIBS)
	$(CC) $(CFLAGS) -o $(BUILD)/quant $(BUILD)/quant.o $(BUILD)/libphi.a $(LDLIBS)
	$(CC) $(CFLAGS) -o $(BUILD)/phi-server $(BUILD)/phi-server.o $(BUILD)/libphi.a $(LDLIBS)
	@BUILD=$(BUILD) PHI=$(BUILD)/phi QUANT=$(BUILD)/quant ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh

# libFuzzer + ASan + UBSan on every parser of untrusted bytes, FUZZ_SECONDS each (clang).
FUZZ_SECONDS ?= 20
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=c11 -D_GNU_SOURCE -I.
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
# The library is compiled once for all targets (-fsanitize=fuzzer-no-link), each target linked to it.
FUZZ_OBJ     := $(LIB_SRC:%.c=build-fuzz/obj/%.o)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_FLAGS)) -MMD -MP -c $< -o $@
-include $(FUZZ_OBJ:.o=.d)
fuzz: quant $(FUZZ_OBJ)
	@mkdir -p build-fuzz/corpus-model
	./quant --random tiny -q q4 build-fuzz/corpus-model/tiny-q4.phi 2>/dev/null
	./quant --random tiny -q f16 build-fuzz/corpus-model/tiny-f16.phi 2>/dev/null
	@mkdir -p build-fuzz/corpus-gguf-seed
	$(CC) $(CFLAGS) -o build-fuzz/gguf_seeds fuzz/gguf_seeds.c && build-fuzz/gguf_seeds build-fuzz/corpus-gguf-seed
	@set -e; for f in $(FUZZ_SRC); do \
	    n=$$(basename $$f .c); \
	    $(FUZZ_CC) $(FUZZ_FLAGS) $$f $(FUZZ_OBJ) -o build-fuzz/$$n -lm -lpthread; \
	    mkdir -p build-fuzz/corpus-$$n; \
	    seeds=$$(ls -d fuzz/seeds/$$n 2>/dev/null || true); [ $$n = fuzz_model ] && seeds="$$seeds build-fuzz/corpus-model"; \
	    [ $$n = fuzz_gguf ] && seeds="build-fuzz/corpus-gguf-seed $$(ls -d ../shared/data/llamacpp-vocab 2>/dev/null || true)"; \
	    [ $$n = fuzz_http ] && seeds=fuzz/http_seeds; \
	    [ $$n = fuzz_lora ] && sh scripts/lora_fuzz_seeds.sh build-fuzz/corpus-lora-seed && seeds=build-fuzz/corpus-lora-seed; \
	    echo "== $$n ($(FUZZ_SECONDS) s)"; \
	    if ! build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=300000 -print_final_stats=1 \
	        build-fuzz/corpus-$$n $$seeds > build-fuzz/$$n.log 2>&1; then \
	        tail -40 build-fuzz/$$n.log; echo "fuzz: $$n found a failure"; exit 1; fi; \
	    grep -E '^Done' build-fuzz/$$n.log; \
	done

# The standing fuzz campaign (not run in CI): every target for FUZZ_LONG_SECONDS of CPU time
# (default 1 h), FUZZ_JOBS (default 2) at a time at nice 19, resuming from its corpus in
# build-fuzz/ (scripts/fuzz_campaign.sh; one line per target in build-fuzz/campaign.txt).
FUZZ_LONG_SECONDS ?= 3600
FUZZ_JOBS ?= 2
fuzz-long:
	$(MAKE) fuzz FUZZ_SECONDS=1
	bash scripts/fuzz_campaign.sh $(FUZZ_LONG_SECONDS) $(FUZZ_JOBS)

# The ARM leg (aarch64 cross build run under qemu-user, with and without dotprod).
arm-test: quant
	sh scripts/arm-test.sh

# The AVX-512 kernels on emulated zmm intrinsics, the whole suite on them (scripts/zmm-emu-test.sh):
# their tests on a machine without AVX-512.
zmm-emu-test:
	sh scripts/zmm-emu-test.sh

# The board legs: static cross builds running the suite under qemu-user (scripts/cross-test.sh).
armv7-test riscv64-test: quant
	sh scripts/cross-test.sh $(@:-test=)

# make wasm: phi for WebAssembly with Debian's emscripten (emcc), in build-wasm/, run by node:
#   node build-wasm/phi.js -m models/phi3-trained-tiny-q4.phi -p "..."
# The scalar kernels on one thread (no workers); WASM_SIMD=1 adds -msimd128 (SIMD128: the
# compiler vectorizes the scalar C; build-wasm-simd/). Files go through node's own file system
# (NODERAWFS). Debian's emcc finds its JS optimizer's acorn in /usr/share/nodejs (NODE_PATH).
# make wasm-test: scripts/wasm-test.sh (the demo model under node against the native binary).
WASM_SIMD    ?= 0
WASM_BUILD   := build-wasm$(if $(filter 1,$(WASM_SIMD)),-simd)
WASM_LDFLAGS := -sENVIRONMENT=node -sNODERAWFS=1 -sALLOW_MEMORY_GROWTH=1 -sEXIT_RUNTIME=1 \
                -sWASM_ASYNC_COMPILATION=0
wasm:
	NODE_PATH=$${NODE_PATH:-/usr/share/nodejs} $(MAKE) CC=emcc AR=emar BUILD=$(WASM_BUILD) \
	    BIN=$(WASM_BUILD) OPT="-O2$(if $(filter 1,$(WASM_SIMD)), -msimd128)" \
	    LDFLAGS="$(WASM_LDFLAGS)" $(WASM_BUILD)/phi.js
$(BUILD)/phi.js: $(BUILD)/phi.o $(BUILD)/libphi.a
	$(CC) $(filter-out -g,$(CFLAGS)) $(LDFLAGS) -o $@ $^ $(LDLIBS)
wasm-test: all
	sh scripts/wasm-test.sh

# make demo: the bundled model (models/README.md: the trained tiny Phi-3 at q4, 20 MB, in the repository)
# continues DEMO_PROMPT greedily; the prompt, the text and phi's stats line (stderr) are printed. Needs
# nothing outside the repository. DEMO_FLAGS: extra phi flags (empty; e.g. a stats flag). DEMO_PHI: the
# binary to run (tests/demo.sh passes the one under test). The repeat penalty keeps greedy decoding
# of a 20 M-parameter model out of loops ("and to the land of Egypt, and to the land of Egypt").
DEMO_MODEL  := models/phi3-trained-tiny-q4.phi
DEMO_PROMPT ?= And it came to pass
DEMO_FLAGS  ?=
DEMO_PHI    ?= $(BIN)/phi
demo: $(DEMO_PHI)
	@mkdir -p $(BUILD)
	@echo '$(DEMO_PHI) -m $(DEMO_MODEL) -p "$(DEMO_PROMPT)" -n 48 --temp 0 --repeat-penalty 1.15 $(DEMO_FLAGS)'
	@printf '%s' "$(DEMO_PROMPT)"; \
	$(DEMO_PHI) -m $(DEMO_MODEL) -p "$(DEMO_PROMPT)" -n 48 --temp 0 --repeat-penalty 1.15 $(DEMO_FLAGS) 2> $(BUILD)/demo.err; \
	rc=$$?; echo; cat $(BUILD)/demo.err >&2; exit $$rc

bench: all
	sh scripts/bench.sh

# phi beside llama.cpp (node-llama-cpp's prebuilt binaries from npm) on the same GGUF files
# (scripts/bench-peer.sh; MIXES="q4_0 q4_k_m q8_0", THREADS=2, REPS=3).
bench-peer: all
	sh scripts/bench-peer.sh "$(or $(MIXES),q4_0 q4_k_m q8_0)" $(or $(THREADS),2) $(or $(REPS),3)

# Kernel micro-benchmark (scripts/bench_kernels.c): GB/s of matvec, GOPS of matmul, per ISA
# (all the CPU runs, or ISAS="avx512vnni ...").
bench-kernels: $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $(BUILD)/bench_kernels scripts/bench_kernels.c $(BUILD)/libphi.a $(LDLIBS)
	$(BUILD)/bench_kernels $(ISAS)
.PHONY: bench-kernels

# What bounds the int8 tiles on an AVX-512 VNNI core (scripts/bench_ports.c): vpdpbusd's rate
# beside the loads and the float work the tiles add.
bench-ports:
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $(BUILD)/bench_ports scripts/bench_ports.c
	$(BUILD)/bench_ports
.PHONY: bench-ports

# Conversion benchmark (scripts/bench-quant.sh): times quant -q q4 on a Phi-3-mini-shaped folder of
# random BF16 weights that scripts/hf_random.c writes (7.6 GB; HF_DIR, default /tmp/hf-mini).
$(BUILD)/hf_random: scripts/hf_random.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread
bench-quant: $(BIN)/quant $(BUILD)/hf_random
	BUILD=$(BUILD) QUANT=$(BIN)/quant sh scripts/bench-quant.sh
.PHONY: bench-quant

# make install PREFIX=/usr/local DESTDIR=/staging: the programs, the man page, and the library
# with its header when the tree has them (libphi.a is built; phi.h appears with the server work), and the
# demo model in $(DATADIR), where the installed phi looks for it (../share/phi beside its bin/).
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/phi
INSTALL ?= install
install: all $(BUILD)/libphi.a
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(LIBDIR)"
	$(INSTALL) -m 755 $(BIN)/phi $(BIN)/quant "$(DESTDIR)$(BINDIR)/"
	@if [ -x $(BIN)/phi-server ]; then echo "$(INSTALL) -m 755 $(BIN)/phi-server $(DESTDIR)$(BINDIR)/"; \
	    $(INSTALL) -m 755 $(BIN)/phi-server "$(DESTDIR)$(BINDIR)/"; fi
	$(INSTALL) -m 644 docs/phi.1 "$(DESTDIR)$(MANDIR)/man1/phi.1"
	$(INSTALL) -d "$(DESTDIR)$(DATADIR)"
	$(INSTALL) -m 644 $(DEMO_MODEL) "$(DESTDIR)$(DATADIR)/"
	$(INSTALL) -m 644 $(BUILD)/libphi.a "$(DESTDIR)$(LIBDIR)/libphi.a"
	@if [ -f phi.h ]; then $(INSTALL) -d "$(DESTDIR)$(INCDIR)" && \
	    echo "$(INSTALL) -m 644 phi.h $(DESTDIR)$(INCDIR)/phi.h" && $(INSTALL) -m 644 phi.h "$(DESTDIR)$(INCDIR)/phi.h"; fi

# Removes exactly the files install writes (never a folder: they may hold other programs' files; the
# one exception is share/phi, which is phi's own, and only when it is empty).
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/phi" "$(DESTDIR)$(BINDIR)/quant" "$(DESTDIR)$(BINDIR)/phi-server" \
	    "$(DESTDIR)$(MANDIR)/man1/phi.1" "$(DESTDIR)$(LIBDIR)/libphi.a" "$(DESTDIR)$(INCDIR)/phi.h" \
	    "$(DESTDIR)$(DATADIR)/$(notdir $(DEMO_MODEL))"
	@rmdir "$(DESTDIR)$(DATADIR)" 2>/dev/null || true

# Static binaries for copying to a board or another Linux: build-static/phi and build-static/quant.
static:
	$(MAKE) BUILD=build-static BIN=build-static LDFLAGS="$(LDFLAGS) -static" all

clean:
	rm -rf build build-* phi quant phi-server

.PHONY: FORCE all demo examples test tests install uninstall static asan all-asan bench bench-peer fuzz fuzz-long arm-test armv7-test riscv64-test zmm-emu-test wasm wasm-test clean
-include $(LIB_OBJ:.o=.d) $(BUILD)/phi.d $(BUILD)/quant.d $(BUILD)/phi-server.d
