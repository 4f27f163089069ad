#!/bin/sh
# The ARM leg: build phi and the kernel tests with the aarch64 cross compiler (static), then run
# them under qemu-user with and without the dot-product extension. Needs gcc-aarch64-linux-gnu
# and qemu-user (Debian). Prints PASS/FAIL/SKIP lines like the rest of the suite.
CROSS=${CROSS:-aarch64-linux-gnu-gcc}
QEMU=${QEMU:-qemu-aarch64}
BUILD=build-$($CROSS -dumpmachine 2>/dev/null)
DATA=${PHI_DATA:-../shared/data}
TMP=$BUILD/tmp
if ! command -v "$CROSS" >/dev/null || ! command -v "$QEMU" >/dev/null; then
    echo "SKIP arm: $CROSS or $QEMU is not installed (Debian: gcc-aarch64-linux-gnu qemu-user)"
    exit 0
fi
make -s CC="$CROSS" all $BUILD/tests/test_kernels $BUILD/tests/test_blocks $BUILD/tests/test_attn $BUILD/tests/test_ktypes \
    $BUILD/tests/test_batch_exact > $BUILD.log 2>&1 || {
    echo "FAIL arm_build: $(tail -5 $BUILD.log | tr '\n' ' ')"
    exit 1
}
echo "PASS arm_build: static aarch64 phi and tests ($(file -b $BUILD/phi | cut -d, -f1-2))"
mkdir -p $TMP
failed=0
# the tests' emulator sweeps (tests/harness.h t_emulated): one or two points of what is the same
# C on every ISA
export PHI_EXEC="$QEMU"
# cortex-a53: NEON without dotprod; max: NEON with dotprod (and everything else qemu knows)
for cpu in cortex-a53 max; do
    $QEMU -cpu $cpu $BUILD/tests/test_blocks > $TMP/blocks-$cpu.out 2>&1 || failed=1
    $QEMU -cpu $cpu $BUILD/tests/test_kernels > $TMP/kernels-$cpu.out 2>&1 || failed=1
    $QEMU -cpu $cpu $BUILD/tests/test_attn > $TMP/attn-$cpu.out 2>&1 || failed=1
    PHI_DATA="$DATA" $QEMU -cpu $cpu $BUILD/tests/test_ktypes > $TMP/ktypes-$cpu.out 2>&1 || failed=1
    $QEMU -cpu $cpu $BUILD/tests/test_batch_exact > $TMP/batch-$cpu.out 2>&1 || failed=1
    sed "s/^\(PASS\|FAIL\|SKIP\) /\1 arm-$cpu /" $TMP/blocks-$cpu.out $TMP/kernels-$cpu.out $TMP/attn-$cpu.out $TMP/ktypes-$cpu.out \
        $TMP/batch-$cpu.out
done
# End to end: a tiny reference model converted on the host, run by the ARM binary.
if [ -d "$DATA/phi3-tiny-ref/mha" ]; then
    ref="$DATA/phi3-tiny-ref/mha/reference"
    ids=$(tr -d '[] \n' < "$ref/ids.json")
    want=$(tr -d '[] \n' < "$ref/greedy.json")
    ./quant -q f32 "$DATA/phi3-tiny-ref/mha" $TMP/mha-f32.phi 2>/dev/null
    for cpu in cortex-a53 max; do
        got=$($QEMU -cpu $cpu $BUILD/phi -m $TMP/mha-f32.phi --ids "$ids" -n 32 --temp 0 --ignore-eos -c 256 -t 2 2> $TMP/err)
        if [ "$got" = "$want" ]; then
            echo "PASS arm-$cpu greedy_matches_llamacpp: 32 ids identical ($(grep -o '^phi: [a-z0-9]* x[0-9]*' $TMP/err))"
        else
            echo "FAIL arm-$cpu greedy_matches_llamacpp: got $got; $(cat $TMP/err)"
            failed=1
        fi
    done
else
    echo "SKIP arm greedy_matches_llamacpp: $DATA/phi3-tiny-ref is absent"
fi
exit $failed
