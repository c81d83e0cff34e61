#!/usr/bin/env bash
# ferry code: fresh words, --words N, and --check with its typo suggestions.
set -u
. "$(dirname "$0")/tap.sh"
F=${FERRY_EXE:?FERRY_EXE must point at the ferry binary}

expect_exit 0 "ferry code exits 0" "$F" code
ok_if "prints three lowercase words joined by '-'" grep -Eqx '[a-z]{3,6}(-[a-z]{3,6}){2}' <<<"$OUT"
ok_if "prints exactly one line on stdout" test "$(wc -l <<<"$OUT")" = 1
ok_if "says the server puts the number in front" contains "$ERR" "the server puts a number in front"
ok_if "shows what the code will look like" contains "$ERR" "42-$OUT"
first=$OUT
expect_exit 0 "a second ferry code exits 0" "$F" code
ok_if "two runs draw different words" test "$OUT" != "$first"

expect_exit 0 "ferry code --words 5 exits 0" "$F" code --words 5
ok_if "--words 5 prints five words" grep -Eqx '[a-z]{3,6}(-[a-z]{3,6}){4}' <<<"$OUT"
expect_exit 0 "ferry code -w 2 exits 0" "$F" code -w 2
ok_if "-w 2 prints two words" grep -Eqx '[a-z]{3,6}-[a-z]{3,6}' <<<"$OUT"
expect_exit 0 "ferry code --words 8 exits 0" "$F" code --words 8
ok_if "--words 8 prints eight words" grep -Eqx '[a-z]{3,6}(-[a-z]{3,6}){7}' <<<"$OUT"
expect_exit 2 "--words 1 is a usage error" "$F" code --words 1
ok_if "--words 1 names the range" contains "$ERR" "--words must be 2 to 8 (got 1)"
expect_exit 2 "--words 9 is a usage error" "$F" code --words 9
expect_exit 2 "--words 0 is a usage error" "$F" code --words 0
expect_exit 2 "--words abc is a usage error" "$F" code --words abc

expect_exit 0 "--check accepts a code" "$F" code --check 7-ocean-tiger-piano
ok_if "--check prints the code" test "$OUT" = "7-ocean-tiger-piano"
expect_exit 0 "--check is forgiving about case and separators" "$F" code --check "  42 OCEAN_tiger..Piano "
ok_if "--check prints it canonically" test "$OUT" = "42-ocean-tiger-piano"
expect_exit 0 "--check round-trips fresh words" "$F" code --check "99-$first"
ok_if "fresh words come back unchanged" test "$OUT" = "99-$first"

expect_exit 1 "--check with a typo exits 1" "$F" code --check 7-ocean-tigre-piano
ok_if "the typo message suggests the word" contains "$ERR" "ferry: error: 'tigre' is not a code word — did you mean 'tiger'?"
ok_if "nothing on stdout for a bad code" test -z "$OUT"
expect_exit 1 "--check with an unknown word exits 1" "$F" code --check 7-ocean-xqzzvk-piano
ok_if "an unknown word says to check with the sender" contains "$ERR" "'xqzzvk' is not a code word: check the code with the sender"
expect_exit 1 "--check without a number exits 1" "$F" code --check ocean-tiger-piano
ok_if "a missing number is explained" contains "$ERR" "no number in front"
expect_exit 1 "--check with one word exits 1" "$F" code --check 7-ocean
ok_if "a short code is explained" contains "$ERR" "has 1 word after the number"
expect_exit 1 "--check with a leading zero exits 1" "$F" code --check 07-ocean-tiger
ok_if "a leading zero is explained" contains "$ERR" "starts with 0"

expect_exit 2 "--check and --words together is a usage error" "$F" code --check 7-ocean-tiger --words 3
expect_exit 2 "a stray argument is a usage error" "$F" code 7-ocean-tiger
ok_if "a stray argument points at --check" contains "$ERR" "ferry code --check CODE"
expect_exit 0 "ferry code --help exits 0" "$F" code --help
ok_if "help lists --check and --words" grep -q -- '--check' <<<"$OUT"
expect_exit 0 "ferry --help lists the code command" "$F" --help
ok_if "the command table has code" contains "$OUT" "code "

done_testing
