"""A small YAML reader for Kubernetes manifests (Python standard library only).

It covers what manifests use: block mappings and sequences, flow collections
([a, b], {k: v}), plain / single-quoted / double-quoted scalars, literal (|)
and folded (>) block scalars with chomping indicators, comments, and several
documents separated by '---'.  Not supported: anchors/aliases, tags other
than being ignored, complex (?) keys, multi-line plain or quoted scalars.
Scalars are resolved with YAML 1.2 core-schema rules, as sigs.k8s.io/yaml
does (true/false/null/~, integers, floats).
"""

import json
import re

__all__ = ["load_all", "load", "YAMLError", "dump"]


class YAMLError(ValueError):
    pass


_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_OCT_RE = re.compile(r"^0o[0-7]+$")
_HEX_RE = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _resolve_plain(s):
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(s):
        return int(s)
    if _OCT_RE.match(s):
        return int(s[2:], 8)
    if _HEX_RE.match(s):
        return int(s[2:], 16)
    if _FLOAT_RE.match(s) and any(c.isdigit() for c in s):
        return float(s)
    if s in (".inf", ".Inf", "+.inf", "+.Inf"):
        return float("inf")
    if s in ("-.inf", "-.Inf"):
        return float("-inf")
    if s in (".nan", ".NaN"):
        return float("nan")
    return s


def _strip_comment(line):
    """Remove a trailing comment that is outside quotes."""
    out = []
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            out.append(c)
            if quote == "'" and c == "'":
                if i + 1 < len(line) and line[i + 1] == "'":
                    out.append("'")
                    i += 1
                else:
                    quote = None
            elif quote == '"' and c == "\\":
                if i + 1 < len(line):
                    out.append(line[i + 1])
                    i += 1
            elif quote == '"' and c == '"':
                quote = None
        else:
            if c == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            if c in "'\"" and (i == 0 or line[i - 1] in " \t[{,:-"):
                quote = c
            out.append(c)
        i += 1
    return "".join(out).rstrip()


_DQ_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n",
    "v": "\v", "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"',
    "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
}


def _parse_double(s, i):
    """Parse a double-quoted scalar starting at s[i] == '"'. Returns (value, end)."""
    assert s[i] == '"'
    i += 1
    out = []
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            i += 1
            if i >= len(s):
                break
            e = s[i]
            if e in _DQ_ESCAPES:
                out.append(_DQ_ESCAPES[e])
            elif e == "x":
                out.append(chr(int(s[i + 1:i + 3], 16)))
                i += 2
            elif e == "u":
                out.append(chr(int(s[i + 1:i + 5], 16)))
                i += 4
            elif e == "U":
                out.append(chr(int(s[i + 1:i + 9], 16)))
                i += 8
            else:
                raise YAMLError("bad escape \\%s" % e)
            i += 1
            continue
        out.append(c)
        i += 1
    raise YAMLError("unterminated double-quoted string")


def _parse_single(s, i):
    assert s[i] == "'"
    i += 1
    out = []
    while i < len(s):
        c = s[i]
        if c == "'":
            if i + 1 < len(s) and s[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise YAMLError("unterminated single-quoted string")


class _Flow:
    """Parser for flow collections and inline scalars."""

    def __init__(self, s):
        self.s = s
        self.i = 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def value(self, terminators):
        self.ws()
        if self.i >= len(self.s):
            return None
        c = self.s[self.i]
        if c == "[":
            return self.seq()
        if c == "{":
            return self.map()
        if c == '"':
            v, self.i = _parse_double(self.s, self.i)
            return v
        if c == "'":
            v, self.i = _parse_single(self.s, self.i)
            return v
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in terminators:
            if self.s[self.i] == ":" and (self.i + 1 >= len(self.s) or self.s[self.i + 1] in " ,]}"):
                if ":" in terminators:
                    break
            self.i += 1
        return _resolve_plain(self.s[start:self.i].strip())

    def seq(self):
        self.i += 1
        out = []
        while True:
            self.ws()
            if self.i >= len(self.s):
                raise YAMLError("unterminated flow sequence")
            if self.s[self.i] == "]":
                self.i += 1
                return out
            out.append(self.value(",]"))
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1

    def map(self):
        self.i += 1
        out = {}
        while True:
            self.ws()
            if self.i >= len(self.s):
                raise YAMLError("unterminated flow mapping")
            if self.s[self.i] == "}":
                self.i += 1
                return out
            k = self.value(":,}")
            self.ws()
            v = None
            if self.i < len(self.s) and self.s[self.i] == ":":
                self.i += 1
                v = self.value(",}")
            out[k if isinstance(k, str) else _key_str(k)] = v
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1


def _key_str(k):
    if k is None:
        return "null"
    if k is True:
        return "true"
    if k is False:
        return "false"
    return str(k)


def _inline_scalar(text):
    text = text.strip()
    if not text:
        return None
    if text[0] in "[{\"'":
        f = _Flow(text)
        v = f.value("")
        f.ws()
        if f.i != len(text):
            raise YAMLError("trailing characters after value: %r" % text)
        return v
    return _resolve_plain(text)


def _split_key(text):
    """If text starts with 'key:' (mapping entry), return (key, rest); else None."""
    if not text:
        return None
    if text[0] == '"':
        k, j = _parse_double(text, 0)
    elif text[0] == "'":
        k, j = _parse_single(text, 0)
    else:
        j = 0
        while True:
            j = text.find(":", j)
            if j < 0:
                return None
            if j + 1 == len(text) or text[j + 1] in " \t":
                break
            j += 1
        k = text[:j].strip()
        if not k or k[0] in "[{#":
            return None
        return k, text[j + 1:].strip()
    rest = text[j:].lstrip()
    if not rest.startswith(":"):
        return None
    if len(rest) > 1 and rest[1] not in " \t":
        return None
    return k, rest[1:].strip()


class _Lines:
    def __init__(self, raw_lines):
        self.lines = raw_lines  # list of (indent, text, rawline)
        self.i = 0

    def peek(self):
        while self.i < len(self.lines):
            ind, text, raw = self.lines[self.i]
            if text == "":
                self.i += 1
                continue
            return ind, text
        return None

    def next(self):
        p = self.peek()
        self.i += 1
        return p


def _block_scalar(header, lines, parent_indent):
    """Read a | or > block scalar. lines.i points after the header line."""
    style = header[0]
    chomp = "clip"
    explicit = None
    for c in header[1:]:
        if c == "-":
            chomp = "strip"
        elif c == "+":
            chomp = "keep"
        elif c.isdigit():
            explicit = int(c)
    body = []
    indent = None
    while lines.i < len(lines.lines):
        ind, text, raw = lines.lines[lines.i]
        stripped = raw.rstrip("\n")
        if stripped.strip() == "":
            body.append("")
            lines.i += 1
            continue
        cur = len(stripped) - len(stripped.lstrip(" "))
        if indent is None:
            indent = parent_indent + explicit if explicit else cur
            if indent <= parent_indent:
                break
        if cur < indent:
            break
        body.append(stripped[indent:])
        lines.i += 1
    # trailing empty lines
    trailing = 0
    while body and body[-1] == "":
        body.pop()
        trailing += 1
    if style == "|":
        text = "\n".join(body)
    else:
        out = ""
        prev_more = False
        for n, ln in enumerate(body):
            more = ln.startswith(" ") or ln.startswith("\t")
            if n == 0:
                out = ln
            elif ln == "":
                out += "\n"
            elif out.endswith("\n") or more or prev_more:
                out += ("" if out.endswith("\n") else "\n") + ln
            else:
                out += " " + ln
            prev_more = more
        text = out
    if not body:
        return "" if chomp != "keep" else "\n" * trailing
    if chomp == "strip":
        return text
    if chomp == "keep":
        return text + "\n" + "\n" * trailing
    return text + "\n"


def _parse_node(lines, indent):
    """Parse the block node whose first line has exactly `indent` spaces."""
    p = lines.peek()
    if p is None:
        return None
    ind, text = p
    if text.startswith("- ") or text == "-":
        return _parse_seq(lines, ind)
    if _split_key(text) is not None:
        return _parse_map(lines, ind)
    # a lone scalar
    lines.next()
    return _inline_scalar(text)


def _value_after_indicator(rest, lines, ind):
    """Value following 'key:' or '- ' on the same line, or a nested block."""
    if rest.startswith("|") or rest.startswith(">"):
        return _block_scalar(rest, lines, ind)
    if rest.startswith("&") or rest.startswith("*"):
        raise YAMLError("anchors and aliases are not supported")
    if rest.startswith("!"):
        parts = rest.split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
    if rest:
        if rest[0] in "[{" and not _balanced(rest):
            # multi-line flow collection
            buf = rest
            while not _balanced(buf):
                q = lines.next()
                if q is None:
                    raise YAMLError("unterminated flow collection")
                buf += " " + q[1]
            return _inline_scalar(buf)
        return _inline_scalar(rest)
    q = lines.peek()
    if q is None:
        return None
    if q[0] > ind:
        return _parse_node(lines, q[0])
    if q[0] == ind and (q[1].startswith("- ") or q[1] == "-"):
        # sequence at the same indentation as its parent key (allowed in mappings)
        return _parse_seq(lines, ind)
    return None


def _balanced(s):
    depth = 0
    quote = None
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return depth <= 0


def _parse_map(lines, ind):
    out = {}
    while True:
        p = lines.peek()
        if p is None or p[0] != ind:
            if p is not None and p[0] > ind:
                raise YAMLError("bad indentation near %r" % p[1])
            return out
        text = p[1]
        kv = _split_key(text)
        if kv is None:
            if text.startswith("- ") or text == "-":
                return out
            raise YAMLError("expected a mapping entry, got %r" % text)
        lines.next()
        k, rest = kv
        if k == "<<":
            raise YAMLError("merge keys are not supported")
        out[k if isinstance(k, str) else _key_str(k)] = _value_after_indicator(rest, lines, ind)


def _parse_seq(lines, ind):
    out = []
    while True:
        p = lines.peek()
        if p is None or p[0] != ind or not (p[1].startswith("- ") or p[1] == "-"):
            return out
        text = p[1]
        rest = text[1:].lstrip(" ")
        item_indent = ind + (len(text) - len(rest))
        if rest == "":
            lines.next()
            out.append(_value_after_indicator("", lines, ind))
            continue
        if rest.startswith("- ") or rest == "-" or (_split_key(rest) is not None and not rest.startswith(("[", "{", '"', "'")) or (_split_key(rest) is not None and rest[0] in "\"'")):
            # nested block node starting on the same line: rewrite the line
            lines.lines[lines.i] = (item_indent, rest, " " * item_indent + rest)
            out.append(_parse_node(lines, item_indent))
            continue
        lines.next()
        out.append(_value_after_indicator(rest, lines, ind))


def _prepare(doc_text):
    raw = []
    for line in doc_text.split("\n"):
        if "\t" in line[: len(line) - len(line.lstrip())]:
            line = line.replace("\t", "  ")
        body = _strip_comment(line)
        ind = len(body) - len(body.lstrip(" "))
        raw.append((ind, body.strip(), line))
    return raw


def _split_documents(text):
    docs = []
    cur = []
    for line in text.split("\n"):
        if line.startswith("---") and (len(line) == 3 or line[3] in " \t"):
            docs.append("\n".join(cur))
            rest = line[3:].strip()
            cur = [rest] if rest and not rest.startswith("#") else []
            continue
        if line.startswith("...") and line.strip() == "...":
            docs.append("\n".join(cur))
            cur = []
            continue
        if line.startswith("%"):
            continue
        cur.append(line)
    docs.append("\n".join(cur))
    return docs


def load_all(text):
    """Parse every document in text; empty documents are skipped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    text = text.replace("\r\n", "\n")
    out = []
    for doc in _split_documents(text):
        lines = _Lines(_prepare(doc))
        p = lines.peek()
        if p is None:
            continue
        if p[1][0] in "[{\"'" and _split_key(p[1]) is None:
            # a flow document (JSON is YAML)
            rest = " ".join(t for _, t, _ in lines.lines[lines.i:] if t)
            out.append(_inline_scalar(rest))
            continue
        v = _parse_node(lines, p[0])
        q = lines.peek()
        if q is not None:
            raise YAMLError("unexpected content at line: %r" % q[1])
        out.append(v)
    return out


def load(text):
    docs = load_all(text)
    if not docs:
        return None
    if len(docs) > 1:
        raise YAMLError("expected one document, found %d" % len(docs))
    return docs[0]


def _dump_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    if s == "" or _resolve_plain(s) != s or s[0] in "!&*-?:,[]{}#|>@`\"'% " or ": " in s or " #" in s or s.endswith((":", " ")) or "\n" in s:
        return json.dumps(s)
    return s


def dump(obj, indent=0):
    """Dump to block YAML (keys in the order given)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append("%s%s:\n%s" % (pad, _dump_scalar(k), dump(v, indent + 2)))
            elif isinstance(v, list) and v:
                lines.append("%s%s:\n%s" % (pad, _dump_scalar(k), dump(v, indent)))
            else:
                lines.append("%s%s: %s\n" % (pad, _dump_scalar(k), _dump_scalar(v) if not isinstance(v, (dict, list)) else ("{}" if isinstance(v, dict) else "[]")))
        return "".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = dump(v, indent + 2)
                lines.append(pad + "- " + inner[indent + 2:])
            else:
                lines.append("%s- %s\n" % (pad, _dump_scalar(v) if not isinstance(v, (dict, list)) else ("{}" if isinstance(v, dict) else "[]")))
        return "".join(lines)
    return pad + _dump_scalar(obj) + "\n"
