#!/bin/sh
# expect_exit.sh CODE COMMAND [ARGS...]: runs the command and succeeds only when it exits with exactly CODE. The
# sanitizer build's leak checks use it for tool runs that must fail cleanly (status 1): a sanitizer report exits
# with tests/sanitize/run.sh's exitcode=86 (LeakSanitizer's own default is 23), which must not pass for a refusal.
expected="$1"
shift
"$@"
status=$?
if [ "$status" -ne "$expected" ]; then
  echo "expect_exit.sh: $1 exited with status $status, expected $expected" >&2
  exit 1
fi
