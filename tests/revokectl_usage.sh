#!/bin/sh
# revokectl_usage.sh REVOKECTL
#
# revokectl's command line with no agent running: exit statuses (0 help and
# version, 1 agent unreachable, 2 bad usage), errors as one line on stderr
# naming the problem, and nothing on stdout but answers and help.
# $REVOKD_ADMIN_SOCKET points into an empty temporary directory, so a real
# agent on this host is never reached.
set -u
ctl=${1:?usage: revokectl_usage.sh PATH-TO-REVOKECTL}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/revokectl-usage.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0

# expect STATUS PATTERN ARGS...: revokectl ARGS exits with STATUS. For a
# failure (STATUS > 0), stderr is one line matching PATTERN (grep -E) and
# stdout is empty; for success, stdout matches PATTERN.
expect() {
	want=$1
	pattern=$2
	shift 2
	REVOKD_ADMIN_SOCKET="$tmp/none.sock" "$ctl" "$@" \
	    >"$tmp/out" 2>"$tmp/err" </dev/null
	got=$?
	problem=""
	if [ "$got" -ne "$want" ]; then
		problem="exit status $got, expected $want"
	elif [ "$want" -eq 0 ] && ! grep -Eq -- "$pattern" "$tmp/out"; then
		problem="stdout does not match /$pattern/"
	elif [ "$want" -ne 0 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
		problem="stderr is not exactly one line"
	elif [ "$want" -ne 0 ] && ! grep -Eq -- "$pattern" "$tmp/err"; then
		problem="stderr does not match /$pattern/"
	elif [ "$want" -ne 0 ] && [ -s "$tmp/out" ]; then
		problem="stdout is not empty"
	fi
	if [ -n "$problem" ]; then
		failures=$((failures + 1))
		echo "FAIL: revokectl $*: $problem"
		sed 's/^/  stdout: /' "$tmp/out"
		sed 's/^/  stderr: /' "$tmp/err"
	else
		echo "ok: revokectl $* (exit $got)"
	fi
}

# Help and version.
expect 0 '^usage: revokectl' --help
expect 0 '^usage: revokectl revoke-token JTI' revoke-token --help
expect 0 '^usage: revokectl check' --help check
expect 0 'whatever the verdict' check --help
expect 0 '^revokectl [0-9]+\.[0-9]+\.[0-9]+$' --version

# Bad usage: exit 2, one line naming the problem.
expect 2 'no command'
expect 2 'no command' --json
expect 2 'unknown command "bogus"' bogus
expect 2 'revoke-token needs a JTI' revoke-token
expect 2 'unknown option --bogus' status --bogus
expect 2 'unknown option -x' -x status
expect 2 'unexpected argument "b"' revoke-token a b
expect 2 'restore-token takes no --reason' restore-token a --reason 1
expect 2 'status takes no --exp' --exp 5 status
expect 2 '--exp "soon"' revoke-token a --exp soon
expect 2 '--exp "2026-02-30T00:00:00Z"' revoke-token a --exp 2026-02-30T00:00:00Z
expect 2 '--reason "256"' revoke-token a --reason 256
expect 2 '--wait "0"' revoke-token a --wait 0
expect 2 '--timeout "-1"' revoke-token a --wait all --timeout -1
expect 2 '--timeout needs --wait' revoke-token a --timeout 2
expect 2 '--exp needs a value' revoke-token a --exp
expect 2 '--exp given twice' revoke-token a --exp 5 --exp 6
expect 2 '--json takes no value' status --json=yes
expect 2 '--no-bump needs --not-before' revoke-user u --no-bump
expect 2 '--not-before "yesterday"' revoke-user u --not-before yesterday
expect 2 'check needs --jti, --sid or --sub' check
expect 2 '--ver and --iat need --sub' check --jti a --ver 3
expect 2 'give one' --socket /x --config /y status
expect 2 '--max-message "10"' --max-message 10 status
expect 2 '--config' --config "$tmp/missing.ini" status

# The agent cannot be reached: exit 1, naming the socket and the reason.
expect 1 '/nonexistent.*No such file or directory' --socket /nonexistent status
expect 1 'none\.sock' status
expect 1 'none\.sock' revoke-token a --exp 2026-11-22T13:00:00.5Z
expect 1 'none\.sock' check --sub u --ver 2 --iat 1700000000
expect 1 'none\.sock' revoke-user u --not-before now --no-bump
expect 1 'none\.sock' -- revoke-token -starts-with-dash

if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
