"""Reader and writer for the UCI text format (the files in /etc/config/).

Why our own: the router's `uci` binary is not available on the endpoint (a plain Linux
server) nor in tests, and the PyPI parsers are not packaged for OpenWrt; the format is
small. This parser follows libuci's tokenizer (file.c) and is *stricter* where libuci
silently guesses, because a misread failover config is worse than a refused one:

* statements: `package NAME`, `config TYPE ['NAME']`, `option NAME VALUE`,
  `list NAME VALUE` (libuci's one-letter abbreviations p/c/o/l are accepted);
  `;` separates statements on one line.
* a word is any mix of bare text, `'single quoted'` (no escapes at all) and
  `"double quoted"` (backslash takes the next character literally) parts;
  `'a'\\''b'` is how `uci export` writes a single quote.
* a bare `\\` takes the next character literally; `\\` at the end of a line joins
  the next line (outside single quotes).
* `#` outside quotes starts a comment up to the end of the line.
* section and option names: letters, digits and `_` (libuci's rule).

Refused here although libuci would merge or guess (each refusal names its line):
a section name used twice (libuci merges the two, whatever their types), an option set
twice in one section, `option` and `list` mixed for one name, `option NAME` without a
value, extra words after a statement, quotes left open at the end of a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_NAME_RE = re.compile(r"[A-Za-z0-9_]+\Z")
_PACKAGE_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
_COMMANDS = {
    "package": "package", "p": "package",
    "config": "config", "c": "config",
    "option": "option", "o": "option",
    "list": "list", "l": "list",
}


def valid_name(s: str) -> bool:
    """True if `s` can be a UCI section or option name."""
    return bool(_NAME_RE.match(s))


@dataclass
class UciOption:
    name: str
    value: str | list[str]  # a list for `list` statements, in file order
    line: int  # line of the first statement that set it

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)


@dataclass
class UciSection:
    type: str
    name: str | None  # None for an anonymous section (`config service`)
    line: int
    options: dict[str, UciOption] = field(default_factory=dict)

    def get(self, name: str, default=None):
        opt = self.options.get(name)
        return default if opt is None else opt.value

    def label(self) -> str:
        """How error messages name this section: `uplink 'wan'` or `service (unnamed, line 9)`."""
        if self.name is None:
            return f"{self.type} (unnamed, line {self.line})"
        name = self.name if len(self.name) <= 40 else f"{self.name[:40]}..."  # long: cut
        return f"{self.type} '{name}'"


class UciSyntaxError(ValueError):
    """The text is not valid UCI. `problems` lists every (line, reason) found."""

    def __init__(self, problems: list[tuple[int, str]], source: str = "<string>"):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(f"{source}:{ln}: {why}" for ln, why in self.problems))


class _Statement:
    __slots__ = ("words", "line", "error")

    def __init__(self, line: int):
        self.words: list[str] = []
        self.line = line
        self.error: tuple[int, str] | None = None


def _tokenize(text: str) -> list[_Statement]:
    """Split text into statements of words, libuci-style. A statement with a lexical
    error carries it and is skipped up to the end of its line."""
    stmts: list[_Statement] = []
    i, n, line = 0, len(text), 1
    cur = _Statement(line)
    word: list[str] | None = None  # None = not inside a word ('' quoted is a word)

    def end_word():
        nonlocal word
        if word is not None:
            cur.words.append("".join(word))
            word = None

    def end_stmt(next_line: int):
        nonlocal cur
        end_word()
        if cur.words or cur.error:
            stmts.append(cur)
        cur = _Statement(next_line)

    def skip_line():
        # after an error or a comment: drop the rest of the physical line
        nonlocal i
        j = text.find("\n", i)
        i = n if j < 0 else j

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            end_stmt(line)
        elif c == "\\":
            if i + 1 < n and text[i + 1] == "\n":  # line continuation
                line += 1
                i += 2
                continue
            if i + 1 >= n:
                i += 1
                continue
            if word is None:
                word = []
            word.append(text[i + 1])
            i += 2
        elif c in " \t\r\f\v":
            end_word()
            i += 1
        elif c == "#":
            end_word()
            skip_line()
        elif c == ";":
            end_stmt(line)
            i += 1
        elif c == "'":
            j = text.find("'", i + 1)
            nl = text.find("\n", i + 1)
            if j < 0 or (0 <= nl < j):
                cur.error = (line, "unterminated ' (single quote opened here is not closed on this line)")
                word = None
                skip_line()
                continue
            if word is None:
                word = []
            word.append(text[i + 1 : j])
            i = j + 1
        elif c == '"':
            if word is None:
                word = []
            i += 1
            start_line = line
            closed = False
            while i < n:
                d = text[i]
                if d == '"':
                    closed = True
                    i += 1
                    break
                if d == "\\" and i + 1 < n:
                    if text[i + 1] == "\n":
                        line += 1
                    else:
                        word.append(text[i + 1])
                    i += 2
                    continue
                if d == "\n":
                    break
                word.append(d)
                i += 1
            if not closed:
                cur.error = (start_line, 'unterminated " (double quote opened here is not closed on this line)')
                word = None
                skip_line()
        else:
            if word is None:
                word = []
            word.append(c)
            i += 1
    end_stmt(line)
    return stmts


def parse_uci(text: str, source: str = "<string>") -> list[UciSection]:
    """Parse UCI text into sections in file order. Raises UciSyntaxError listing every
    problem with its line number."""
    problems: list[tuple[int, str]] = []
    sections: list[UciSection] = []
    by_name: dict[str, UciSection] = {}
    cur: UciSection | None = None

    for st in _tokenize(text):
        if st.error:
            problems.append(st.error)
            continue
        cmd_word, args, ln = st.words[0], st.words[1:], st.line
        cmd = _COMMANDS.get(cmd_word)
        if cmd is None:
            problems.append((ln, f"unknown statement '{cmd_word}' (expected config, option, list or package)"))
            continue
        if cmd == "package":
            if len(args) != 1 or not _PACKAGE_RE.match(args[0]):
                problems.append((ln, "package needs exactly one name (letters, digits, _ and -)"))
            continue
        if cmd == "config":
            if not 1 <= len(args) <= 2:
                problems.append((ln, "config needs a type and at most one name: config TYPE 'name'"))
                cur = UciSection("?", None, ln)  # swallow its options: one error, not one per line
                continue
            stype = args[0]
            name = args[1] if len(args) == 2 else None
            if not stype or any(ch.isspace() or not ch.isprintable() for ch in stype):
                problems.append((ln, f"invalid section type '{stype}'"))
                cur = UciSection("?", None, ln)
                continue
            if name is not None and not valid_name(name):
                problems.append((ln, f"invalid section name '{name}' (letters, digits and _ only)"))
                cur = UciSection(stype, None, ln)
                continue
            cur = UciSection(stype, name, ln)
            if name is not None:
                if name in by_name:
                    first = by_name[name]
                    problems.append((ln, f"section name '{name}' is used twice (lines {first.line} and {ln}); "
                                         "section names must be unique in the file, whatever their type "
                                         "(uci would silently merge the two)"))
                    continue
                by_name[name] = cur
            sections.append(cur)
            continue
        # option / list
        if len(args) != 2:
            what = "no value" if len(args) < 2 else "more than one value (quote values with spaces)"
            problems.append((ln, f"{cmd} '{args[0] if args else ''}' has {what}: {cmd} NAME 'value'"))
            continue
        oname, value = args
        if not valid_name(oname):
            problems.append((ln, f"invalid option name '{oname}' (letters, digits and _ only)"))
            continue
        if cur is None:
            problems.append((ln, f"{cmd} '{oname}' before the first config line"))
            continue
        prev = cur.options.get(oname)
        if prev is None:
            cur.options[oname] = UciOption(oname, [value] if cmd == "list" else value, ln)
        elif cmd == "list" and prev.is_list:
            prev.value.append(value)
        elif cmd == "list" or prev.is_list:
            problems.append((ln, f"'{oname}' is set both with option and list in {cur.label()} "
                                 f"(lines {prev.line} and {ln}); use one form"))
        else:
            problems.append((ln, f"option '{oname}' is set twice in {cur.label()} "
                                 f"(lines {prev.line} and {ln})"))
    if problems:
        raise UciSyntaxError(problems, source)
    return sections


def quote(value: str) -> str:
    """Quote a value the way `uci export` does (single quotes, ' as '\\'')."""
    return "'" + value.replace("'", "'\\''") + "'"


def dump_uci(sections: Iterable[UciSection], package: str | None = None) -> str:
    """Write sections back as UCI text (comments are not kept, as with `uci commit`)."""
    out: list[str] = []
    if package:
        out.append(f"package {quote(package)}\n")
    for s in sections:
        head = f"config {quote(s.type)}" + (f" {quote(s.name)}" if s.name is not None else "")
        out.append("\n" + head)
        for o in s.options.values():
            if o.is_list:
                out.extend(f"\tlist {o.name} {quote(v)}" for v in o.value)
            else:
                out.append(f"\toption {o.name} {quote(o.value)}")
    return "\n".join(out).lstrip("\n") + "\n"
