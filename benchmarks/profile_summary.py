"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the samples go.

    py-spy record -p PID -d 20 -r 200 -f raw -o prof.txt --nonblocking
    python benchmarks/profile_summary.py prof.txt [--top 25]

Prints the top functions by self samples and by inclusive samples (a function counted
once per stack), as % of all samples.
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.profile, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            count = int(count_text)
            frames = [f.rsplit(":", 1)[0] if f.count(":") > 1 else f for f in stack.split(";")]
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"{total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"--- top {args.top} by {title} samples")
        for frame, count in counter.most_common(args.top):
            print(f"{100 * count / total:6.1f} %  {frame}")


if __name__ == "__main__":
    main()
