#!/usr/bin/env python3
"""Checks `synscope replay --format json` (on stdin) against the generator's ground truth.

Usage: synscope replay --format json FILE | python3 bench/agrees.py FILE.truth.tsv [LABEL]

The ground truth (examples/synth.rs writes it beside the capture) has one line per attempt the
generator made: client, server, outcome and errno ("-" for none). This reads synscope's JSON Lines
with Python's own parser, so it checks the output contract too, and compares the two as multisets of
(client, server, outcome, errno): every attempt must be there once, with its outcome and errno, and
no attempt more. Prints one line, and the first disagreements if any; exits 1 when they differ.
"""

import collections
import json
import sys


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    truth_path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) == 3 else "synscope"

    want = collections.Counter()
    with open(truth_path, encoding="utf-8") as truth:
        header = truth.readline().rstrip("\n").split("\t")
        if header != ["client", "server", "outcome", "errno"]:
            print(f"{truth_path}: not a ground-truth file (header {header})", file=sys.stderr)
            return 2
        for line in truth:
            client, server, outcome, errno = line.rstrip("\n").split("\t")
            want[(client, server, outcome, None if errno == "-" else errno)] += 1

    got = collections.Counter()
    summary = None
    for line in sys.stdin:
        record = json.loads(line)
        if record["kind"] == "attempt":
            got[(record["client"], record["server"], record["outcome"], record["errno"])] += 1
        elif record["kind"] == "summary":
            summary = record

    missing = want - got
    extra = got - want
    attempts = sum(want.values())
    agree = attempts - sum(missing.values())
    print(f"ground truth, {label}: {agree} of {attempts} attempts agree, {sum(extra.values())} not in it")
    for (client, server, outcome, errno), n in list(missing.items())[:5]:
        print(f"  want {client} -> {server} {outcome} {errno or '-'} (x{n}), not in the output")
    for (client, server, outcome, errno), n in list(extra.items())[:5]:
        print(f"  got  {client} -> {server} {outcome} {errno or '-'} (x{n}), not in the ground truth")
    if summary is None:
        print("  no summary line at the end of the output")
        return 1
    if summary["attempts"] != sum(got.values()):
        print(f"  the summary counts {summary['attempts']} attempts, the output holds {sum(got.values())}")
        return 1
    return 0 if not missing and not extra else 1


if __name__ == "__main__":
    sys.exit(main())
