#!/bin/sh
# The AVX-512 and AVX-VNNI leg for machines without them (CI's, most laptops): a build whose
# AVX-512 kernel files and AVX-VNNI table run on emulated intrinsics (tests/zmm_emu.h: each as the
# instruction defines it; a native build may fuse a multiply and an add that this one does not, so
# bits are compared within the build) and whose CPU check claims both, then the whole suite on
# it: the model tests run on the AVX-512 kernels (the best ISA
# the build finds), test_kernels and test_batch_exact compare them with the scalar reference,
# across batch sizes, thread counts and panel pairs. Needs an x86-64 CPU with AVX2, FMA and F16C
# (the emulation's own instructions). Prints the suite's lines prefixed 'zmm-emu' and its count.
set -u
BUILD=build-zmm-emu
case "$(uname -m)" in x86_64) ;; *) echo "SKIP zmm-emu: x86-64 only"; exit 0 ;; esac
if ! make -s -j2 BUILD=$BUILD BIN=$BUILD ZMM_EMU=1 all tests > "$BUILD.log" 2>&1; then
    echo "FAIL zmm-emu_build: $(tail -5 "$BUILD.log" | tr '\n' ' ')"
    exit 1
fi
isa=$("$BUILD/phi" --version 2>&1 | sed -n 's/^kernels on this CPU: \([a-z0-9]*\).*/\1/p')
if [ "$isa" != avx512vnni ]; then
    # without AVX2 + FMA + F16C the emulated table is not offered: nothing of it would be tested
    grep -q ' avx2 ' /proc/cpuinfo && echo "FAIL zmm-emu_isa: the build chose '$isa', not avx512vnni" && exit 1
    echo "SKIP zmm-emu: this CPU has no AVX2, which the emulation runs on"
    exit 0
fi
echo "PASS zmm-emu_build: the AVX-512 kernels on emulated intrinsics, chosen as '$isa'"
out=$BUILD/tmp
rm -rf "$out"
# test_perplexity (2 of its 9 minutes) scores windows through the same prompt kernels that
# test_reference holds to the references here
BUILD=$BUILD PHI=$BUILD/phi QUANT=$BUILD/quant PHI_TMP=$out PHI_SKIP="test_perplexity" \
    PHI_SKIP_WHY="its prompt kernels are the ones test_reference checks on this build (make test runs it natively)" \
    sh tests/run.sh > "$BUILD-run.log" 2>&1
rc=$?
sed -n 's/^\(PASS\|FAIL\|SKIP\) /\1 zmm-emu /p' "$BUILD-run.log"
echo "zmm-emu: $(tail -1 "$BUILD-run.log")"
sed -n 's/^slowest/zmm-emu slowest/p' "$BUILD-run.log"
exit $rc
