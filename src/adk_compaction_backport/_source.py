"""Fingerprints of google-adk functions read from their source, never imported.

A fingerprint is the first 16 hex digits of the SHA-256 of what
``inspect.getsource`` returns for the function: its first decorator's line
through the last line of its body. This module finds that text in a module's
source, so the package can check every target before any of google-adk's
modules that hold them is imported (issue #12), and
``tools/`` read unpacked wheels with it (:class:`DirectoryReader`).

Parsing a whole module with ``ast`` costs tens of milliseconds (``runners.py``
is 2,400 lines), more than the package may add to an import. So the text of a
definition is cut out by its indentation first and only that piece is parsed;
when the piece does not parse as exactly that one definition (a string or
bracket that the cut went through), the whole module is parsed instead. Either
way ``ast`` says where the definition starts and ends.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import os
import re
import sys
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class Found:
    """Where a definition's text is: file, first line (decorators included)."""

    __slots__ = ("fingerprint", "first_line", "module", "origin")

    def __init__(self, module: str, origin: str, first_line: int, fp: str) -> None:
        self.module = module
        self.origin = origin
        self.first_line = first_line
        self.fingerprint = fp


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


# Fixed patterns, compiled once: a new pattern per name would cost more than
# the search. Each starts with a newline, so the engine skips ahead fast.
_CODE_LINE = re.compile(r"\n([ \t]*)[^ \t\r\n#)\]}]")


_BLOCK_ENDS: Dict[int, Any] = {}


def _block_end(source: str, header: int, indent: int, stop: int) -> int:
    """Offset just past the block whose header line starts at ``header``.

    A line of code indented no deeper than the header ends the block, unless
    it closes a bracket of a header written over several lines.
    """
    pattern = _BLOCK_ENDS.get(indent)
    if pattern is None:
        pattern = re.compile(r"\n[ \t]{0," + str(indent) + r"}[^ \t\r\n#)\]}]")
        _BLOCK_ENDS[indent] = pattern
    found = pattern.search(source, header, stop)
    return found.start() + 1 if found else stop


def _first_decorator(source: str, header: int, indent: int) -> int:
    """Offset of the first decorator line above ``header`` (or ``header``)."""
    above = source[max(0, header - 4000) : header].splitlines(keepends=True)
    first, offset, pending = header, header, 0
    for line in reversed(above[1:] if header > 4000 else above):
        offset -= len(line)
        if not _is_code(line):
            continue
        if _indent(line) == indent and line.lstrip().startswith("@"):
            first, pending = offset, 0
        elif _indent(line) > indent or line.lstrip()[:1] in (")", "]", "}"):
            pending += 1  # inside a decorator written over several lines?
            if pending > 20:
                break
        else:
            break
    return first


def _piece(source: str, start: int, stop: int, name: str) -> Optional[Tuple[int, int]]:
    """(first, last) 1-based lines of the one definition in the piece."""
    nested = source[start : start + 1] in (" ", "\t")  # ``if 1:`` takes the indent
    try:
        tree = ast.parse(("if 1:\n" if nested else "") + source[start:stop])
        body = tree.body[0].body if nested else tree.body  # type: ignore[attr-defined]
    except (SyntaxError, ValueError, IndexError, AttributeError):
        return None
    top = 2 if nested else 1
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    if len(body) != 1 or not isinstance(body[0], functions):
        return None
    node = body[0]
    if node.name != name:
        return None
    if min([d.lineno for d in node.decorator_list] + [node.lineno]) != top:
        return None  # the piece must start at the first decorator
    first = source.count("\n", 0, start) + 1
    return first, first + node.end_lineno - top  # type: ignore[operator]


def _headers(
    source: str, name: str, start: int, stop: int, indent: Optional[int]
) -> List[int]:
    """Offsets of the lines that define ``name`` at ``indent`` (any: ``None``).

    Substring search, then a look at the line: much faster than a pattern.
    """
    found = []
    for keyword in ("def ", "class "):
        needle = keyword + name
        at = source.find(needle, start, stop)
        while at >= 0:
            after = source[at + len(needle) : at + len(needle) + 1]
            line = source.rfind("\n", 0, at) + 1
            words = source[line:at].split()
            if (
                not (after.isalnum() or after == "_")
                and words in ([], ["async"])
                and (keyword == "def " or not words)
                and (indent is None or _indent(source[line:at]) == indent)
            ):
                found.append(line)
            at = source.find(needle, at + 1, stop)
    return sorted(found)


def _cut(source: str, path: Sequence[str]) -> Optional[Tuple[int, int, str]]:
    """(start, stop, name): the piece that indentation says holds the definition."""
    start, stop, indent = 0, len(source), 0
    for depth, name in enumerate(path):
        if depth:
            body = _CODE_LINE.search(source, start, stop)
            if body is None:
                return None
            indent = len(body.group(1))
        headers = _headers(source, name, start, stop, indent)
        if not headers:
            return None
        at = headers[-1]  # the last definition is the one that counts
        end = _block_end(source, at, indent, stop)
        if depth < len(path) - 1:  # a class: its body is searched, not parsed
            start, stop = at, end
            continue
        return _first_decorator(source, at, indent), end, name
    return None


def _trimmed(text: str) -> str:
    """The piece without the blank and comment lines that end it."""
    lines = text.splitlines(keepends=True)
    while lines and not _is_code(lines[-1]):
        lines.pop()
    return "".join(lines)


def _slow(tree: ast.Module, path: Sequence[str]) -> Optional[Tuple[int, int]]:
    body: List[ast.stmt] = tree.body
    node: Any = None
    for name in path:
        matches = [n for n in body if isinstance(n, _DEFINITIONS) and n.name == name]
        if not matches:
            return None
        node = matches[-1]
        body = node.body
    if node is None or isinstance(node, ast.ClassDef):
        return None
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    return first - 1, node.end_lineno - 1


_IMPORT_FROM = re.compile(r"\nfrom[ \t]+([.\w]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)")


def _imported(source: str, module: str, name: str) -> Optional[Tuple[str, str]]:
    """(module, name) a top-level ``from X import name`` takes ``name`` from."""
    if name not in source:
        return None
    found = None
    for match in _IMPORT_FROM.finditer(source):
        if name not in match.group(2):
            continue
        try:
            node = ast.parse(match.group(0).strip()).body[0]
        except SyntaxError:
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        for alias in node.names:
            if (alias.asname or alias.name) == name:
                found = (_absolute(module, node.module or "", node.level), alias.name)
    return found


def _absolute(module: str, target: str, level: int) -> str:
    if not level:
        return target
    base = module.split(".")[:-level]  # a module (not a package) imports
    return ".".join(base + ([target] if target else []))


def locate(
    source: str, qualname: str, expected: Collection[str] = ()
) -> Optional[Tuple[int, str]]:
    """(first line, fingerprint) of ``qualname``'s definition in ``source``.

    A piece cut by indentation whose fingerprint is one of ``expected`` is
    that definition's exact text, so ``ast`` is not needed to confirm it; any
    other answer comes from ``ast``.
    """
    path = qualname.split(".")
    cut = _cut(source, path)
    if cut is not None:
        start, stop, name = cut
        first = source.count("\n", 0, start) + 1
        quick = digest(_trimmed(source[start:stop]))
        if quick in expected:
            return first, quick
        lines = _piece(source, start, stop, name)
    else:
        lines = None
    if lines is None:
        if not all(_headers(source, p, 0, len(source), None) for p in path):
            return None  # not defined here at all: no need to parse it whole
        found = _slow(ast.parse(source), path)
        if found is None:
            return None
        lines = found[0] + 1, found[1] + 1
    text = "".join(source.splitlines(keepends=True)[lines[0] - 1 : lines[1]])
    return lines[0], digest(text)


def fingerprint_in_source(source: str, qualname: str) -> Optional[str]:
    """What ``_patching.fingerprint`` gives for the imported function."""
    found = locate(source, qualname)
    return None if found is None else found[1]


class SourceReader:
    """Reads google-adk modules through the import system, without running them.

    ``find_spec`` of each package level with the finders on ``sys.meta_path``
    (a parent already imported lends its ``__path__``), then the loader's
    ``get_source``. Results are kept: one read and one search per module.
    """

    def __init__(self, skip: Any = None) -> None:
        self._skip = skip
        self._specs: Dict[str, Any] = {}
        self._sources: Dict[str, Optional[Tuple[str, str]]] = {}

    def _spec(self, module: str) -> Any:
        if module in self._specs:
            return self._specs[module]
        loaded = sys.modules.get(module)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        if spec is None:
            parent, _, _ = module.rpartition(".")
            path = None
            if parent:
                parent_spec = self._spec(parent)
                path = getattr(parent_spec, "submodule_search_locations", None)
                if path is None:
                    self._specs[module] = None
                    return None
            spec = self._find(module, path)
        self._specs[module] = spec
        return spec

    def _find(self, module: str, path: Any) -> Any:
        for finder in list(sys.meta_path):
            if finder is self._skip or getattr(finder, "find_spec", None) is None:
                continue
            try:
                spec = finder.find_spec(module, path)
            except Exception:
                continue
            if spec is not None:
                return spec
        return importlib.machinery.PathFinder.find_spec(module, path)

    def source(self, module: str) -> Optional[Tuple[str, str]]:
        """(source, origin file) of ``module``, or ``None``."""
        if module not in self._sources:
            self._sources[module] = self._read(module)
        return self._sources[module]

    def _read(self, module: str) -> Optional[Tuple[str, str]]:
        spec = self._spec(module)
        loader = getattr(spec, "loader", None)
        try:
            text = loader.get_source(module)  # type: ignore[union-attr]
        except Exception:
            return None
        if not isinstance(text, str):
            return None
        return text, str(getattr(spec, "origin", "") or "")

    def find(
        self, module: str, qualname: str, expected: Collection[str] = ()
    ) -> Optional[Found]:
        """Where ``module.qualname`` is defined (following ``from X import``)."""
        for _ in range(5):  # re-exports of re-exports, within reason
            read = self.source(module)
            if read is None:
                return None
            source, origin = read
            where = locate(source, qualname, expected)
            if where is not None:
                return Found(module, origin, where[0], where[1])
            head, _, rest = qualname.partition(".")
            imported = _imported(source, module, head)
            if imported is None:
                return None
            module, qualname = imported[0], imported[1] + ("." + rest if rest else "")
        return None


class DirectoryReader(SourceReader):
    """Reads modules from a folder instead (an unpacked wheel: the one holding
    ``google/``), for the maintainer tools; same search, same fingerprints."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self._root = root

    def _read(self, module: str) -> Optional[Tuple[str, str]]:
        base = os.path.join(self._root, *module.split("."))
        for path in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as file:
                    return file.read(), path
        return None
