#!/bin/sh
# librevoke installed into a fresh prefix, then docs/examples/revoke-check.c
# built against it with pkg-config alone and run: the install gives a
# library, a header and a librevoke.pc that work, and the library exports
# nothing but revoke_*.
#   librevoke_install.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
set -eu
build=$1
src=$2
sanitize=${3:+-fsanitize=$3}
prefix=$(mktemp -d "${TMPDIR:-/tmp}/librevoke-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

fail() {
	echo "librevoke_install: $*" >&2
	exit 1
}

cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name librevoke.pc)
[ -n "$pc" ] || fail "no librevoke.pc installed"
[ -f "$prefix/include/revoke.h" ] || fail "no revoke.h installed"
export PKG_CONFIG_PATH="$(dirname "$pc")"
libdir=$(pkg-config --variable=libdir librevoke)
[ -e "$libdir/librevoke.so" ] || fail "pkg-config's libdir $libdir has no librevoke.so"

# Nothing but the API leaves the library.
others=$(nm -D --defined-only "$libdir/librevoke.so" |
	awk '$3 != "" && $3 !~ /^revoke_[a-z]/ && $3 !~ /^REVOKE_0$/ { print $3 }')
[ -z "$others" ] || fail "exported beyond revoke_*: $others"

${CC:-cc} -std=c11 -Wall -Wextra -Werror $sanitize -o "$prefix/revoke-check" \
	"$src/docs/examples/revoke-check.c" \
	$(pkg-config --cflags --libs librevoke) ||
	fail "the example does not build against the installed library"

run() {
	LD_LIBRARY_PATH="$libdir" "$prefix/revoke-check" "$@" 2>&1
}
set +e
out=$(run "$prefix/no-agent.sock" tok-1)
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "no agent: exit $rc, want 3 ($out)"
case $out in
*"cannot connect to the agent"*) ;;
*) fail "no agent: said '$out'" ;;
esac
set +e
out=$(run --reader "$prefix" "$prefix/no-secret" tok-1)
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "no store: exit $rc, want 3 ($out)"
set +e
run >/dev/null
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "usage: exit $rc, want 2"
echo "librevoke_install: ok"
