# Counts words line by line; reports through $KILN_REPORT (docs/command-components.md).
import json
import os
import sys

src, out, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(src).read().splitlines()
words = 0
with open(os.environ["KILN_REPORT"], "a", buffering=1) as report:
    for i, line in enumerate(lines):
        words += len(line.split())
        report.write(f"metric words_so_far {words} {i}\n")
        report.write(f"progress {(i + 1) / len(lines)} line {i + 1}\n")
    report.write("log info counted " + str(len(lines)) + " lines\n")
    report.write(f"output words {words * scale}\n")
with open(os.path.join(out, "counts.json"), "w") as f:
    json.dump({"lines": len(lines), "words": words}, f)
print("counted", words)
