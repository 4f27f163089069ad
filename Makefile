# phi: make (phi + quant), make test, make bench, make asan, make CC=aarch64-linux-gnu-gcc
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -I.
LDLIBS  += -lm -lpthread
BUILD   ?= build

ifeq ($(BLAS),1)
CFLAGS  += -DPHI_BLAS
LDLIBS  += -lopenblas
endif

LIB_SRC  := $(sort $(wildcard engine/*.c kernels/*.c tokenizer/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

all: phi quant

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libphi.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

phi: $(BUILD)/phi.o $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

quant: $(BUILD)/quant.o $(BUILD)/libphi.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

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

all-asan: $(BUILD)/phi.o $(BUILD)/quant.o $(BUILD)/libphi.a tests
	$(CC) $(CFLAGS) -o $(BUILD)/phi $(BUILD)/phi.o $(BUILD)/libphi.a $(LDLIBS)
	$(CC) $(CFLAGS) -o $(BUILD)/quant $(BUILD)/quant.o $(BUILD)/libphi.a $(LDLIBS)
	@BUILD=$(BUILD) PHI=$(BUILD)/phi QUANT=$(BUILD)/quant ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh

bench: all
	sh scripts/bench.sh

clean:
	rm -rf build build-asan phi quant

.PHONY: all test tests asan all-asan bench clean
-include $(LIB_OBJ:.o=.d) $(BUILD)/phi.d $(BUILD)/quant.d
