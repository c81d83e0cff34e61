#!/usr/bin/env bash
# The ferry executable as a user meets it: help, version, bad command lines.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}

expect_exit 0 "ferry --help exits 0" "$F" --help
ok_if "--help lists the version command" contains "$OUT" "version"
expect_exit 0 "ferry --version exits 0" "$F" --version
ok_if "--version prints ferry and a version" grep -Eq '^ferry [0-9]+\.[0-9]+\.[0-9]+$' <<<"$(head -n1 <<<"$OUT")"
expect_exit 2 "no command is a usage error" "$F"
expect_exit 2 "an unknown command is a usage error" "$F" frobnicate
ok_if "unknown command names itself and the way out" contains "$ERR" "unknown command 'frobnicate' (run 'ferry --help'"
expect_exit 2 "an unknown option is a usage error" "$F" version --no-such-option
ok_if "unknown option message says how to get help" contains "$ERR" "--help"
expect_exit 0 "ferry version --help exits 0" "$F" version --help
ok_if "command help shows usage" contains "$OUT" "Usage:"

done_testing
