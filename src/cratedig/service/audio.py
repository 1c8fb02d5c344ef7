"""Audio over HTTP: WAV encoding, byte-range responses (RFC 9110 §14) and an LRU of renders.

Browsers seek in an ``<audio>`` element by asking for byte ranges; an answer without
``Accept-Ranges``/206 makes Chrome refuse to seek and Safari refuse to play at all.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """16-bit PCM WAV of mono or channels-first ``audio`` (clipped to +-1)."""
    import soundfile as sf

    y = audio.T if audio.ndim == 2 else audio
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def read_span(path: str, start: float, end: float) -> tuple[np.ndarray, int] | None:
    """Seconds ``start``-``end`` of ``path`` at its own rate, channels-first, read without
    decoding the rest; None when libsndfile cannot seek in this file (the caller decodes)."""
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            if not f.seekable():
                return None
            sr = f.samplerate
            lo = max(int(round(start * sr)), 0)
            hi = min(int(round(end * sr)), f.frames)
            if hi <= lo:
                return None
            f.seek(lo)
            y = f.read(hi - lo, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        return None
    if y.shape[1] > 2:
        y = y[:, :2]
    return np.ascontiguousarray(y.T), sr


def ranged_response(request: Request, data: bytes, media_type: str) -> Response:
    """``data`` whole (200) or the one byte range asked for (206); 416 when unsatisfiable.

    Several ranges in one request are answered with the whole body, as RFC 9110 allows.
    """
    size = len(data)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    spec = request.headers.get("range")
    if not spec or "," in spec:
        return Response(data, media_type=media_type, headers=headers)
    m = _RANGE.match(spec.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return _unsatisfiable(size)
    if m.group(1) == "":  # the last n bytes
        n = int(m.group(2))
        if n == 0:
            return _unsatisfiable(size)
        lo, hi = max(size - n, 0), size - 1
    else:
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else size - 1
        hi = min(hi, size - 1)
        if lo >= size or hi < lo:
            return _unsatisfiable(size)
    headers["Content-Range"] = f"bytes {lo}-{hi}/{size}"
    return Response(data[lo : hi + 1], status_code=206, media_type=media_type, headers=headers)


def _unsatisfiable(size: int) -> Response:
    return Response(
        content=b'{"error": "requested range not satisfiable"}',
        status_code=416,
        media_type="application/json",
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


class BytesCache:
    """A thread-safe LRU of encoded audio, bounded in bytes; concurrent requests for one key
    compute it once (the browser asks for several ranges of the same render at once)."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[object, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._pending: dict[object, threading.Lock] = {}

    def clear(self) -> None:
        """Forget every item (the library changed: a segment id may now name other audio)."""
        with self._lock:
            self._items.clear()
            self._size = 0

    def get_or_make(self, key: object, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            lock = self._pending.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            data = make()
            with self._lock:
                self._pending.pop(key, None)
                if len(data) <= self.max_bytes:
                    self._items[key] = data
                    self._size += len(data)
                    while self._size > self.max_bytes:
                        _, old = self._items.popitem(last=False)
                        self._size -= len(old)
            return data
