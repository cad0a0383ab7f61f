"""Every relative link of the documentation resolves, offline: README.md, BENCHMARKS.md and
docs/**/*.md. A link to a file or folder must name one that exists inside the repository (a
link out of it, `../something`, would not work on a clone of this repository alone); a link
with an anchor to a Markdown file must name one of its headings, slugged as GitHub slugs them
(lower case, punctuation dropped, spaces to hyphens, `-1`, `-2` ... for repeats), or an
explicit `<a id>`/`<a name>`. Links inside code blocks and code spans are text, not links.
External links (`https:`, `mailto:` ...) are not fetched.

    python3 infra/lib/check_links.py [FILE.md ...]    (default: the files above)

Prints one line per broken link (file:line: target: why) and exits 1 if there is any."""

import os
import re
import sys
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target "title") and ![alt](target); text may hold one level of brackets.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
HTML_ANCHOR = re.compile(r"""<a\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def default_files():
    files = [f for f in ("README.md", "BENCHMARKS.md") if os.path.exists(os.path.join(ROOT, f))]
    for directory, _, names in os.walk(os.path.join(ROOT, "docs")):
        files += [os.path.relpath(os.path.join(directory, n), ROOT) for n in sorted(names) if n.endswith(".md")]
    return sorted(files)


def prose_lines(text):
    """(line number, line) of everything outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        yield number, line


def heading_text(raw):
    """A heading's text as GitHub renders it: links to their text, no code or emphasis marks."""
    raw = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", raw)
    raw = re.sub(r"<[^>]+>", "", raw)
    parts = re.split(r"(`+[^`]*`+)", raw)
    out = []
    for part in parts:
        if part.startswith("`"):
            out.append(part.strip("`"))
        else:
            part = part.replace("*", "")
            part = re.sub(r"(^|[^\w])_+|_+(?=[^\w]|$)", r"\1", part)
            out.append(part)
    return "".join(out)


def slug(text):
    """github-slugger: lower case, keep letters, marks, numbers, connector punctuation,
    spaces and hyphens; spaces become hyphens."""
    kept = []
    for ch in text.lower():
        category = unicodedata.category(ch)
        if ch in " -" or category[0] in "LMN" or category == "Pc":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found, seen = set(), {}
        for _, line in prose_lines(text):
            match = HEADING.match(line)
            if match:
                base = slug(heading_text(match.group(2)))
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f"{base}-{count}")
            found.update(HTML_ANCHOR.findall(line))
        _anchors[path] = found
    return _anchors[path]


def targets(line):
    bare = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
    for match in INLINE.finditer(bare):
        yield match.group(1)
    match = REFERENCE.match(bare)
    if match:
        yield match.group(1)
    yield from HTML_LINK.findall(bare)


def check(source):
    problems = []
    path = os.path.join(ROOT, source)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for number, line in prose_lines(text):
        for target in targets(line):
            target = target.strip("<>")
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            file_part, _, anchor = target.partition("#")
            file_part = file_part.split("?", 1)[0]
            if file_part:
                resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
            else:
                resolved = path
            where = f"{source}:{number}: {target}"
            if os.path.relpath(resolved, ROOT).startswith(".."):
                problems.append(f"{where}: points outside the repository")
                continue
            if not os.path.exists(resolved):
                problems.append(f"{where}: no such file or folder")
                continue
            if anchor and resolved.endswith(".md") and os.path.isfile(resolved):
                if anchor not in anchors(resolved):
                    problems.append(f"{where}: no heading with the anchor #{anchor}")
    return problems


def main(argv):
    files = argv or default_files()
    problems = []
    for source in files:
        problems += check(os.path.relpath(os.path.abspath(source), ROOT))
    for problem in problems:
        print(problem)
    links = len(files)
    if problems:
        print(f"{len(problems)} broken link(s) in {links} file(s)", file=sys.stderr)
        return 1
    print(f"links: every relative link and anchor of {links} Markdown files resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
