#!/bin/sh
# The AVX-512, AVX-VNNI and AMX leg for machines without them (CI's, most laptops): a build whose
# AVX-512 and AMX kernel files and AVX-VNNI table run on emulated intrinsics (tests/zmm_emu.h: each as the
# instruction defines it; a native build may fuse a multiply and an add that this one does not, so
# bits are compared within the build) and whose CPU check claims both, then the suite's
# kernel-facing programs on it (KERNEL_TESTS): test_kernels, test_attn and test_batch_exact compare
# them with the scalar reference across batch sizes, thread counts and panel pairs; the model
# tests run the models on them (the best ISA the build finds) against the references, across
# sequences in one pass, KV cache types, long contexts, GGUF block types, Phi-3-mini's full
# widths and --lookup on K weights. The rest of the suite (servers, tokenizer, parsers, the lookup
# and LoRA logic) is the same C on every ISA and runs natively in make test: in this build it
# took 4 of the leg's 10 minutes in CI. Needs an x86-64 CPU with AVX2, FMA and F16C
# (the emulation's own instructions). Prints the suite's lines prefixed 'zmm-emu' and its count.
set -u
BUILD=build-zmm-emu
case "$(uname -m)" in x86_64) ;; *) echo "SKIP zmm-emu: x86-64 only"; exit 0 ;; esac
if ! make -s -j2 BUILD=$BUILD BIN=$BUILD ZMM_EMU=1 all tests > "$BUILD.log" 2>&1; then
    echo "FAIL zmm-emu_build: $(tail -5 "$BUILD.log" | tr '\n' ' ')"
    exit 1
fi
isa=$("$BUILD/phi" --version 2>&1 | sed -n 's/^kernels on this CPU: \([a-z0-9]*\).*/\1/p')
if [ "$isa" != amx ]; then
    # without AVX2 + FMA + F16C the emulated table is not offered: nothing of it would be tested
    grep -q ' avx2 ' /proc/cpuinfo && echo "FAIL zmm-emu_isa: the build chose '$isa', not amx" && exit 1
    echo "SKIP zmm-emu: this CPU has no AVX2, which the emulation runs on"
    exit 0
fi
echo "PASS zmm-emu_build: the AVX-512 and AMX kernels on emulated intrinsics, chosen as '$isa'"
out=$BUILD/tmp
rm -rf "$out"
# test_perplexity (2 minutes here) is left out too: it scores windows through the same prompt
# kernels that test_reference holds to the references.
KERNEL_TESTS="test_kernels test_blocks test_attn test_ktypes test_batch_exact test_reference test_multiseq
    test_kvcache test_context test_gguf_model full_size.sh lookup.sh"
echo "zmm-emu runs: $(echo $KERNEL_TESTS) (the other programs are the same C on every ISA: make test runs them natively)"
BUILD=$BUILD PHI=$BUILD/phi QUANT=$BUILD/quant PHI_TMP=$out PHI_ONLY="$(echo $KERNEL_TESTS)" \
    sh tests/run.sh > "$BUILD-run.log" 2>&1
rc=$?
sed -n 's/^\(PASS\|FAIL\|SKIP\) /\1 zmm-emu /p' "$BUILD-run.log"
echo "zmm-emu: $(tail -1 "$BUILD-run.log")"
sed -n 's/^slowest/zmm-emu slowest/p' "$BUILD-run.log"
exit $rc
