"""Decoding a large JSON reply without building all of it: each element of the named arrays
is turned into something small as soon as it is decoded.

A 3x-ui `inbounds/list` or an Eylandoo `list_all` reply holds every user of the panel in one
document (121 MB for 250,000 users). `json.loads` of it holds the text as a string beside
the bytes and builds every user's object before the first one is read, several times the
reply's size at once. Here the text is decoded a window at a time and each user's object is
handed to `element` alone, so that only what `element` returns is kept.

The result is the value `json.loads` builds, with each element of an array at one of the
`arrays` paths replaced by `element(it)`; what `json.loads` refuses is refused here too
(a `ValueError`).
"""

from __future__ import annotations

import codecs
import enum
import itertools
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Collection, Iterable, Iterator

_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as the json module matches it
_WINDOW = 1 << 20  # bytes decoded at a time
# A JSON string's longest escape: \uXXXX.
_LONGEST_ESCAPE = 6
# The json module's own string scanner (its C one where there is one); not in its stubs.
_scan_string: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
# A value cut off by the window is scanned again once this many times as much is decoded.
_GROWTH = 8
# A number at the end of the text decoded so far may go on in the next window
# ("1" of "12", or "1" of "1e5"): a value must end this far before it to be taken.
_MARGIN = 4
# The json module's own scanner (its C one where there is one): one value at an index.
# (Its stub types the argument as a scanner; a decoder is what it reads its settings from.)
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


class Step(enum.Enum):
    """A path step that is not an object key."""

    EACH = "each element of an array"


EACH = Step.EACH
# Object keys, and EACH for any element of an array.
Path = tuple[str | Step, ...]
Element = Callable[[object], object]
# The arrays to read element by element, what to make of each element, and the values
# not to read at all.
Elements = tuple[Collection[Path], Element, Collection[Path]]


def decode_elements(
    body: bytes,
    arrays: Collection[Path],
    element: Element,
    unread: Collection[Path] = (),
    *,
    window: int = _WINDOW,
) -> object:
    """`json.loads(body)`, with every element of an array at one of `arrays` read by `element`.

    A value at one of the `unread` paths is checked as `json.loads` checks it
    but not built: None stands in its place. Raises ValueError (or
    RecursionError) where `json.loads` would.
    """
    if json.detect_encoding(body) != "utf-8":
        # UTF-16/32 or a byte order mark: rare enough to decode whole.
        return apply_elements(json.loads(body), arrays, element, unread)
    view = memoryview(body)
    chunks = (view[at : at + window] for at in range(0, len(view), window))
    return _decoded(_Text(chunks, window), _Arrays(arrays, unread), element)


def decode_arriving(
    chunks: Iterable[bytes],
    arrays: Collection[Path],
    element: Element,
    unread: Collection[Path] = (),
    *,
    window: int = _WINDOW,
) -> object:
    """`decode_elements` of a body that arrives in `chunks`, so that it is never held whole.

    Raises ValueError (or RecursionError) where `json.loads` would; whatever
    iterating `chunks` raises goes through.
    """
    arriving = iter(chunks)
    head = b""
    # `detect_encoding` reads the first four bytes.
    while len(head) < 4:
        chunk = next(arriving, None)
        if chunk is None:
            break
        head += chunk
    if json.detect_encoding(head) != "utf-8":
        return decode_elements(head + b"".join(arriving), arrays, element, unread)
    text = _Text(itertools.chain((head,), arriving), window)
    return _decoded(text, _Arrays(arrays, unread), element)


def _decoded(text: _Text, arrays: _Arrays, element: Element) -> object:
    value = _value(text, (), arrays, element)
    if text.skip() != "":
        raise text.error("Extra data")
    return value


def apply_elements(
    value: object, arrays: Collection[Path], element: Element, unread: Collection[Path] = ()
) -> object:
    """A decoded `value` with `element` applied (and `unread` dropped) as `decode_elements` does."""
    return _apply(value, (), _Arrays(arrays, unread), element)


class _Arrays:
    """The paths whose arrays are streamed, those not read, and every path that leads to one."""

    def __init__(self, arrays: Collection[Path], unread: Collection[Path]) -> None:
        self.streamed = frozenset(arrays)
        self.unread = frozenset(unread)
        ends = self.streamed | self.unread
        self.leading = frozenset(path[:n] for path in ends for n in range(len(path)))


def _apply(value: object, path: Path, arrays: _Arrays, element: Element) -> object:
    if path in arrays.unread:
        return None
    if isinstance(value, list):
        if path in arrays.streamed:
            return [element(item) for item in value]
        if path in arrays.leading:
            return [_apply(item, (*path, EACH), arrays, element) for item in value]
    elif isinstance(value, dict) and path in arrays.leading:
        return {key: _apply(item, (*path, key), arrays, element) for key, item in value.items()}
    return value


class _Text:
    """The body's text, decoded a window at a time as it arrives, and the position read up to."""

    def __init__(self, chunks: Iterator[bytes | memoryview], window: int) -> None:
        self._chunks = chunks
        self._window = window
        self._ended = False
        self._decode = codecs.getincrementaldecoder("utf-8")("surrogatepass").decode
        self.buf = ""
        self.pos = 0

    def more(self, at_least: int = 0) -> bool:
        """Decode at least one more window (and `at_least` bytes); False at the end."""
        if self._ended:
            return False
        wanted = max(self._window, at_least)
        parts: list[bytes | memoryview] = []
        size = 0
        for chunk in self._chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= wanted:
                break
        else:
            self._ended = True
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        text = self._decode(data, final=self._ended)
        # What was read is dropped: the text held is what is not read yet.
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def skip(self) -> str:
        """Skip whitespace; the next character, or "" at the end of the body."""
        while True:
            match = _WHITESPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def whole(self) -> object:
        """The one value that starts here, decoded by the json module."""
        while True:
            try:
                value, end = _scan(self.buf, self.pos)
            except (StopIteration, json.JSONDecodeError):
                # Cut off by the window, or malformed: only the end of the body tells.
                # A long value (3x-ui's `settings`: a string of every client) is thus
                # scanned a few times, not once a window.
                if not self.more(_GROWTH * (len(self.buf) - self.pos)):
                    raise self.error("Expecting value") from None
                continue
            # One more window settles it: growing here could decode the rest of the body.
            if end > len(self.buf) - _MARGIN and self.more():
                continue
            self.pos = end
            return value

    def step_over_string(self) -> None:
        """Step over the string that starts here, checked as the json module checks one.

        A string longer than the text at hand is checked a piece at a time, each
        piece cut where no escape is, and let go; none is kept.
        """
        self.pos += 1  # its opening quote
        while True:
            try:
                end = _scan_string(self.buf, self.pos, True)[1]  # strict, as json.loads is
            except json.JSONDecodeError as exc:
                # Not closed in the text at hand, or an escape it may have cut: read on.
                # Anything else is refused whatever comes next.
                cut_short = exc.msg.startswith("Unterminated string")
                if not cut_short and exc.pos < len(self.buf) - _LONGEST_ESCAPE:
                    raise
            else:
                self.pos = end
                return
            cut = _escape_boundary(self.buf, self.pos)
            # The piece up to the cut, closed: the json module checks it as it checks any string.
            _scan_string(self.buf[self.pos : cut] + '"', 0, True)
            self.pos = cut
            if not self.more():
                raise self.error("Unterminated string starting at")

    def take(self, char: str, expecting: str) -> None:
        """Step over `char`, the next character after whitespace, or fail."""
        if self.skip() != char:
            raise self.error(expecting)
        self.pos += 1

    def more_members(self, close: str) -> bool:
        """Step over the comma before another member (True) or the closing `close` (False)."""
        char = self.skip()
        if char not in (",", close):
            raise self.error("Expecting ',' delimiter")
        self.pos += 1
        return char == ","

    def error(self, message: str) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.buf, self.pos)


def _value(text: _Text, path: Path, arrays: _Arrays, element: Element) -> object:
    if path in arrays.unread:
        _step_over(text)
        return None
    char = text.skip()
    if char == "[" and path in arrays.streamed:
        return _array(text, path, arrays, element, streamed=True)
    if path in arrays.leading:
        if char == "{":
            return _object(text, path, arrays, element)
        if char == "[":
            return _array(text, path, arrays, element, streamed=False)
    return text.whole()


def _step_over(text: _Text) -> None:
    """Step over the value that starts here, checked as `json.loads` checks it, never built.

    A long string (3x-ui's `settings`: every client again) is checked a window
    at a time, and an object or array member by member.
    """
    char = text.skip()
    if char == '"':
        text.step_over_string()
    elif char in ("{", "["):
        close = "}" if char == "{" else "]"
        text.pos += 1
        if text.skip() == close:
            text.pos += 1
            return
        while True:
            if char == "{":
                if text.skip() != '"':
                    raise text.error("Expecting property name enclosed in double quotes")
                text.step_over_string()
                text.take(":", "Expecting ':' delimiter")
            _step_over(text)
            if not text.more_members(close):
                return
    else:
        text.whole()


def _escape_boundary(buf: str, start: int) -> int:
    """An index past `start` of a string's text (from `start`, where no escape is cut) that cuts
    no escape, as near the end of `buf` as one is: the text before it can be checked alone.

    A run of backslashes begins an escape, as the text before it ends one.
    """
    end = len(buf)
    last = buf.rfind("\\", max(start, end - _LONGEST_ESCAPE + 1), end)
    if last == -1:
        return end
    while last > start and buf[last - 1] == "\\":
        last -= 1
    return last


def _object(text: _Text, path: Path, arrays: _Arrays, element: Element) -> dict[str, object]:
    text.pos += 1
    result: dict[str, object] = {}
    if text.skip() == "}":
        text.pos += 1
        return result
    while True:
        if text.skip() != '"':
            raise text.error("Expecting property name enclosed in double quotes")
        key = text.whole()
        assert isinstance(key, str)  # noqa: S101 - a JSON value that starts with '"'
        text.take(":", "Expecting ':' delimiter")
        result[key] = _value(text, (*path, key), arrays, element)
        if not text.more_members("}"):
            return result


def _array(
    text: _Text, path: Path, arrays: _Arrays, element: Element, *, streamed: bool
) -> list[object]:
    text.pos += 1
    result: list[object] = []
    if text.skip() == "]":
        text.pos += 1
        return result
    inner = (*path, EACH)
    while True:
        if streamed:
            _elements(text, element, result)
        else:
            result.append(_value(text, inner, arrays, element))
        if not text.more_members("]"):
            return result


def _elements(text: _Text, element: Element, into: list[object]) -> None:
    """Read elements of a streamed array into `into` while they are plainly in the text.

    The loop a listing of a million users spends its time in: one call of the
    scanner and of `element` per element while each is followed by a comma in the
    text at hand; anything else (the window's end, whitespace, the array's end, an
    error) is left to the careful path.
    """
    text.skip()
    buf, pos = text.buf, text.pos
    limit = len(buf) - _MARGIN
    append = into.append
    while True:
        try:
            value, end = _scan(buf, pos)
        except (StopIteration, json.JSONDecodeError):
            break
        if end > limit or buf[end] != ",":
            break
        append(element(value))
        pos = end + 1
        if buf[pos] in " \t\n\r":
            pos = _WHITESPACE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos > limit:
                break
    text.pos = pos
    text.skip()
    into.append(element(text.whole()))
