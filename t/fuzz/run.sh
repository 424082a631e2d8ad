#!/bin/sh
# t/fuzz/run.sh - build one libFuzzer harness with clang and run it.
#
#   sh t/fuzz/run.sh NAME [SECONDS]    fuzz NAME (default 60 s)
#   sh t/fuzz/run.sh NAME merge        minimize t/fuzz/corpus/NAME with
#                                      what the runs found (-merge=1)
#   sh t/fuzz/run.sh NAME build        only build the fuzzer
#
# NAME: response metadata cert multipart url cookie redirect logout session.
# The core library is configured out of tree with clang-14 and
# -fsanitize=fuzzer-no-link,address,undefined into $FUZZ_BUILDDIR
# (default: build-fuzz at the top of the tree), the harness linked with
# -fsanitize=fuzzer against its .libs/libbtsso.a.  New inputs go to
# $FUZZ_BUILDDIR/fuzz/corpus-NAME (the tree's seed corpus is only read),
# crashes to $FUZZ_BUILDDIR/fuzz/artifacts-NAME/.  Runs at nice 19 with
# -rss_limit_mb=2048; FUZZ_JOBS, FUZZ_ARGS add libFuzzer options.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
name=${1:?usage: run.sh NAME [SECONDS|merge|build]}
what=${2:-60}
CC=${FUZZ_CC:-clang-14}
B=${FUZZ_BUILDDIR:-$top/build-fuzz}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

dict=
case $name in
    response) max_len=16384; dict=saml ;;
    metadata) max_len=32768; dict=saml ;;
    cert)     max_len=8192 ;;
    multipart) max_len=8192 ;;
    url)      max_len=4200; dict=url ;;
    cookie)   max_len=1024 ;;
    redirect) max_len=8192; dict=url ;;
    logout)   max_len=8192; dict=saml ;;
    session)  max_len=8192 ;;
    *) echo "run.sh: unknown harness '$name'" >&2; exit 2 ;;
esac
src=$top/t/fuzz/fuzz_$name.c
seeds=$top/t/fuzz/corpus/$name

# the core library, instrumented
if [ ! -f "$B/Makefile" ]; then
    [ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null)
    mkdir -p "$B"
    (cd "$B" && "$top/configure" -q CC="$CC" \
        CFLAGS="-fsanitize=fuzzer-no-link $SAN -fno-omit-frame-pointer -g -O1" \
        LDFLAGS="$SAN")
fi
build() {
    nice -n 19 make -s -C "$B" libbtsso.la >/dev/null
    eval "$(make -s -C "$B" fuzz-flags)"
    mkdir -p "$B/fuzz/corpus-$name" "$B/fuzz/artifacts-$name"
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] \
       || [ "$top/t/fuzz/fuzz_common.h" -nt "$bin" ] \
       || [ "$B/.libs/libbtsso.a" -nt "$bin" ]; then
        # shellcheck disable=SC2086
        nice -n 19 "$CC" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer \
            $SAN $FUZZ_CPPFLAGS -I"$top/mod_btsso" -DTOP_SRCDIR="\"$top\"" \
            "$src" "$B/.libs/libbtsso.a" $FUZZ_LIBS -o "$bin"
    fi
}
bin=$B/fuzz/fuzz_$name
# two runs started together must not rebuild the library at the same time
if command -v flock >/dev/null 2>&1; then
    exec 9>"$B/.fuzz-build.lock"
    flock 9
    build
    flock -u 9
    exec 9>&-
else
    build
fi

dictarg=
[ -n "$dict" ] && dictarg="-dict=$top/t/fuzz/$dict.dict"

case $what in
    build)
        echo "$bin"
        ;;
    merge)
        # add to the seeds (kept as they are, names and all) only the found
        # inputs that reach coverage the seeds do not
        nice -n 19 "$bin" -merge=1 -rss_limit_mb=2048 -max_len=$max_len \
            "$seeds" "$B/fuzz/corpus-$name"
        echo "run.sh: $seeds now holds $(ls "$seeds" | wc -l) inputs"
        ;;
    *)
        # shellcheck disable=SC2086
        exec nice -n 19 "$bin" -max_total_time="$what" -rss_limit_mb=2048 \
            -max_len=$max_len -timeout=25 -print_final_stats=1 \
            -artifact_prefix="$B/fuzz/artifacts-$name/" $dictarg \
            ${FUZZ_ARGS:-} "$B/fuzz/corpus-$name" "$seeds"
        ;;
esac
