#!/bin/sh
# make_help.test.sh: `make help` lists every target of the Makefile, one line each (from the `## `
# comments on the rules), and the README's "Make targets" table says exactly the same: the same
# targets, in the same order, with the same text.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
need_cmd make "make setup"
T=$(mktemp -d /tmp/plm_help.XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
fail=0
# help: "make NAME   text" -> "NAME<TAB>text"
make -s --no-print-directory help | sed -E 's/^make ([a-z][a-z-]*) +(.*)$/\1\t\2/' >"$T/help"
# every rule of the Makefile that names a target (not a variable, a pattern, a file, or a
# target-specific variable such as `demo: SETUP_REF = 0`), once, in order
grep -E '^[a-z][a-z-]*:([^=]|$)' Makefile | grep -vE '^[a-z-]+: *[A-Za-z_]+ *[:?+]?=' |
    sed 's/:.*//' | awk '!seen[$0]++' >"$T/rules"
# README: the rows of the table under "## Make targets": | `make NAME` | text |
awk '/^## /{ on = ($0 == "## Make targets") } on && /^\| `make /' README.md |
    sed -E 's/^\| `make ([a-z][a-z-]*)` \| (.*) \|$/\1\t\2/' >"$T/readme"
n=$(wc -l <"$T/help")
[ "$n" -ge 10 ] || { echo "FAIL make_help: make help printed $n targets"; cat "$T/help"; fail=1; }
if cut -f1 "$T/help" | diff "$T/rules" - >"$T/d1"; then
    echo "ok   make help: all $n Makefile targets, one line each"
else
    echo "FAIL make_help: Makefile targets (<) vs make help (>): a rule lacks its '## ' comment"
    cat "$T/d1"; fail=1
fi
if diff "$T/help" "$T/readme" >"$T/d2"; then
    echo "ok   README's Make targets table == make help ($n rows)"
else
    echo "FAIL make_help: make help (<) vs README table (>)"; cat "$T/d2"; fail=1
fi
exit $fail
