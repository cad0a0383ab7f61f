"""Every Mermaid diagram of the documentation renders: each ```mermaid block of README.md,
BENCHMARKS.md and docs/**/*.md is rendered by mermaid-cli (infra/node_modules, installed by
infra/check-docs) driving Debian's Chromium as infra/puppeteer-config.json says (headless,
--no-sandbox, and a dead proxy, so nothing is fetched from the network). One browser per file;
when a file fails, its blocks are rendered one by one to name the block at fault.

    python3 infra/lib/check_mermaid.py [FILE.md ...]

The SVGs land in target/check-docs/mermaid/. Exits 1 if any block does not render."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from check_links import ROOT, default_files  # noqa: E402

MMDC = os.path.join(ROOT, "infra", "node_modules", ".bin", "mmdc")
CONFIG = os.path.join(ROOT, "infra", "puppeteer-config.json")
OUT = os.path.join(ROOT, "target", "check-docs", "mermaid")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([\w-]*)")
TIMEOUT_S = 180


def blocks(path):
    """(first line, text) of each Mermaid block of a Markdown file."""
    found, fence, start, lines = [], None, 0, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            match = FENCE.match(line)
            if fence is None:
                if match:
                    fence, start, lines = match.group(1), number, []
                    kind = match.group(2).lower()
                continue
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not match.group(2):
                if kind == "mermaid":
                    found.append((start, "".join(lines)))
                fence = None
                continue
            lines.append(line)
    return found


def mmdc(source, target):
    """Runs mermaid-cli; (ok, its output)."""
    try:
        done = subprocess.run(
            [MMDC, "--quiet", "--puppeteerConfigFile", CONFIG, "--input", source, "--output", target],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return False, f"mermaid-cli did not finish within {TIMEOUT_S} s"
    output = (done.stdout + done.stderr).strip()
    return done.returncode == 0, output


def first_lines(text, count=4):
    return "\n".join("    " + line for line in text.splitlines()[:count])


def main(argv):
    if not os.access(MMDC, os.X_OK):
        print(f"{MMDC} is missing: run infra/check-docs (it installs mermaid-cli)", file=sys.stderr)
        return 2
    os.makedirs(OUT, exist_ok=True)
    files = [os.path.relpath(os.path.abspath(f), ROOT) for f in argv] or default_files()
    started = time.monotonic()
    total, failed = 0, []
    for source in files:
        found = blocks(os.path.join(ROOT, source))
        if not found:
            continue
        total += len(found)
        name = source.replace(os.sep, "-")
        ok, output = mmdc(os.path.join(ROOT, source), os.path.join(OUT, name))
        if ok:
            continue
        # Name the block at fault: each one on its own.
        for line, text in found:
            single = os.path.join(OUT, f"{name[:-3]}-line{line}.mmd")
            with open(single, "w", encoding="utf-8") as f:
                f.write(text)
            ok_one, output_one = mmdc(single, single[:-4] + ".svg")
            if not ok_one:
                failed.append(f"{source}:{line}: the Mermaid block does not render:\n{first_lines(output_one)}")
        if not any(problem.startswith(f"{source}:") for problem in failed):
            failed.append(f"{source}: mermaid-cli failed on the file:\n{first_lines(output)}")
    for problem in failed:
        print(problem)
    took = time.monotonic() - started
    if failed:
        print(f"{len(failed)} Mermaid problem(s) ({took:.1f} s)", file=sys.stderr)
        return 1
    print(f"diagrams: {total} Mermaid blocks render ({took:.1f} s; SVGs in {os.path.relpath(OUT, ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
