"""Framing for the parent <-> worker channel: a small JSON header plus arrays as ``.npy`` bytes.

Why a custom frame and not pickle: nothing executable may cross the process boundary (a worker
is running third-party code that may be broken), and a broken worker must produce a *clear*
error, never a hang. So every frame starts with a magic tag and explicit lengths, every read has
a deadline, and arrays are decoded with ``allow_pickle=False``.

Layout of one frame (all integers big-endian)::

    b"CPW1" | u32 header_len | u32 n_arrays | n_arrays x u64 array_len | header JSON | arrays

The channel is a connected ``AF_UNIX`` stream socket (one end per process); stdout and stderr
are never used, because TensorFlow, XLA and oneDNN write logs there.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from conv_parity.case import ConvCase

from conv_parity.errors import HarnessError

MAGIC = b"CPW1"
_PREFIX = struct.Struct("!4sII")
_LEN = struct.Struct("!Q")
MAX_HEADER_BYTES = 1 << 20  # a header is a few hundred bytes; anything bigger is garbage
MAX_ARRAYS = 64
_READ_AHEAD = 1 << 16  # bytes one small read may fetch ahead (see Channel._recv_exact)
MAX_ARRAY_BYTES = 1 << 36  # 64 GiB: far above any conv case, far below a garbage u64

Frame = tuple[dict[str, Any], list[np.ndarray]]


class ProtocolError(HarnessError):
    """A malformed, truncated or unexpected frame: the peer is broken or out of sync."""


class ChannelClosed(ProtocolError):
    """The peer closed the channel cleanly between frames (it exited or crashed)."""


class FrameTimeout(ProtocolError, TimeoutError):
    """No complete frame arrived before the deadline."""


_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z]\d*)', 'fortran_order': (True|False), "
    r"'shape': \(((?:\d+, ?)*\d*)\), \}\s*"
)


def encode_array(a: np.ndarray) -> bytes:
    """One array as ``.npy`` (format 1.0) bytes; object arrays are refused (they need pickle).

    Plain dtypes take a fast path that writes the same bytes ``np.save`` writes, without its
    per-call overhead (it matters at thousands of small cases per second).
    """
    a = np.asarray(a)
    if a.dtype.hasobject:
        raise ProtocolError(f"cannot send an object array (dtype {a.dtype})")
    if a.dtype.fields is not None or a.dtype.subdtype is not None:
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        return buf.getvalue()
    if not a.flags.c_contiguous:
        a = a.copy(order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    header = f"{{'descr': {a.dtype.str!r}, 'fortran_order': False, 'shape': {a.shape!r}, }}"
    pad = 64 - (len(_NPY_MAGIC) + 2 + len(header) + 1) % 64
    hbytes = (header + " " * (pad % 64) + "\n").encode("latin1")
    return b"".join((_NPY_MAGIC, struct.pack("<H", len(hbytes)), hbytes, a.tobytes()))


#: Parsed .npy headers by their bytes: cases repeat a few shapes, and parsing one costs more
#: than the rest of decoding a small array.
_HEADER_CACHE: dict[bytes, tuple[np.dtype, tuple[int, ...], str]] = {}


def _parse_npy_header(raw: bytes) -> tuple[np.dtype, tuple[int, ...], str] | None:
    """(dtype, shape, order) of a .npy 1.0 header this module's fast path understands."""
    hit = _HEADER_CACHE.get(raw)
    if hit is not None:
        return hit
    m = _NPY_HEADER.fullmatch(raw.decode("latin1", "replace"))
    if not m:
        return None
    try:
        dtype = np.dtype(m.group(1))
    except TypeError:
        raise ProtocolError(f"malformed array payload (dtype {m.group(1)!r})") from None
    if dtype.hasobject:
        raise ProtocolError("object array in payload (pickle is not allowed)")
    shape = tuple(int(d) for d in m.group(3).replace(" ", "").split(",") if d)
    parsed = (dtype, shape, "F" if m.group(2) == "True" else "C")
    if len(_HEADER_CACHE) >= 4096:
        _HEADER_CACHE.clear()
    _HEADER_CACHE[raw] = parsed
    return parsed


def decode_array(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Inverse of :func:`encode_array` (any valid .npy without pickle is accepted);
    ProtocolError on anything else. Arrays decoded from a bytearray are writable views of it."""
    if bytes(data[:8]) == _NPY_MAGIC and len(data) >= 10:
        (hlen,) = struct.unpack("<H", data[8:10])
        parsed = _parse_npy_header(bytes(data[10 : 10 + hlen]))
        if parsed is not None:
            dtype, shape, order = parsed
            count = math.prod(shape)
            offset = 10 + hlen
            if len(data) - offset != count * dtype.itemsize:
                raise ProtocolError(
                    f"malformed array payload: {len(data) - offset} data bytes for shape "
                    f"{shape} of {dtype}"
                )
            flat = np.frombuffer(data, dtype, count, offset)
            return flat.reshape(shape, order="F" if order == "F" else "C")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise ProtocolError(f"malformed array payload ({type(exc).__name__}: {exc})") from None


def encode_frame(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    """The bytes of one frame."""
    return frame_from_blobs(header, [encode_array(a) for a in arrays])


def frame_from_blobs(header: dict[str, Any], blobs: Sequence[bytes]) -> bytes:
    """One frame from arrays already encoded by :func:`encode_array` (so a sender can encode
    an array once and send it many times)."""
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    if len(hbytes) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header too large ({len(hbytes)} bytes)")
    if len(blobs) > MAX_ARRAYS:
        raise ProtocolError(f"too many arrays in one frame ({len(blobs)})")
    parts = [_PREFIX.pack(MAGIC, len(hbytes), len(blobs))]
    parts += [_LEN.pack(len(b)) for b in blobs]
    parts.append(hbytes)
    parts += blobs
    return b"".join(parts)


class Channel:
    """One end of a framed, bidirectional channel over a connected stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(True)
        self._pending = bytearray()  # received ahead of the frame being read

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        """Wrap an inherited socket file descriptor (the worker side)."""
        return cls(socket.socket(fileno=fd))

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = (),
             timeout: float | None = None) -> None:
        """Send one frame; OSError (BrokenPipe, ConnectionReset, timeout) when the peer is gone
        or stuck."""
        self.send_raw(encode_frame(header, arrays), timeout)

    def send_raw(self, data: bytes, timeout: float | None = None) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def has_data(self) -> bool:
        """Whether a read would not block: bytes buffered or waiting, or EOF (never blocks)."""
        if self._pending:
            return True
        try:
            self.sock.settimeout(None)  # with a timeout set, recv would poll() first
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # the real read will report it
        return True

    def _recv_exact(self, n: int, deadline: float | None, *,
                    at_boundary: bool = False) -> bytearray:
        """``n`` bytes, from what an earlier read over-fetched first, then from the socket.

        Small reads fetch up to :data:`_READ_AHEAD` bytes at once and keep the rest: a case
        frame is ~10 small fields, and a batch of frames arrives at once, so one read serves
        many fields instead of a poll() and a recv() for each.
        """
        out = bytearray(n)
        view = memoryview(out)
        got = min(n, len(self._pending))
        if got:
            view[:got] = self._pending[:got]
            del self._pending[:got]  # O(1): bytearray deletes from the front in place
        while got < n:
            if deadline is None:
                self.sock.settimeout(None)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    where = "waiting for a frame" if at_boundary and got == 0 else "mid-frame"
                    raise FrameTimeout(f"timed out {where} ({got}/{n} bytes read)")
                self.sock.settimeout(remaining)
            want = n - got
            try:
                if want >= _READ_AHEAD:  # big payloads go straight into place
                    k = self.sock.recv_into(view[got:], want)
                else:
                    chunk = self.sock.recv(_READ_AHEAD)
                    k = min(len(chunk), want)
                    view[got : got + k] = chunk[:k]
                    if len(chunk) > k:
                        self._pending += chunk[k:]
            except TimeoutError:
                continue  # the loop re-checks the deadline and raises FrameTimeout
            except (ConnectionResetError, BrokenPipeError):
                k = 0
            if k == 0:
                if at_boundary and got == 0:
                    raise ChannelClosed("peer closed the channel")
                raise ProtocolError(f"truncated frame: peer closed after {got} of {n} bytes")
            got += k
        return out

    def recv(self, timeout: float | None = None) -> Frame:
        """Read one frame. ChannelClosed on clean EOF, FrameTimeout past `timeout` seconds,
        ProtocolError on anything malformed or truncated."""
        deadline = None if timeout is None else time.monotonic() + timeout
        prefix = self._recv_exact(_PREFIX.size, deadline, at_boundary=True)
        magic, hlen, narr = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise ProtocolError(f"bad frame magic {magic!r} (expected {MAGIC!r}): garbage on channel")
        if hlen > MAX_HEADER_BYTES:
            raise ProtocolError(f"frame header length {hlen} exceeds {MAX_HEADER_BYTES}")
        if narr > MAX_ARRAYS:
            raise ProtocolError(f"frame claims {narr} arrays (max {MAX_ARRAYS})")
        lens = struct.unpack(f"!{narr}Q", self._recv_exact(_LEN.size * narr, deadline))
        for length in lens:
            if length > MAX_ARRAY_BYTES:
                raise ProtocolError(f"frame claims an array of {length} bytes")
        hbytes = self._recv_exact(hlen, deadline)
        try:
            header = json.loads(hbytes)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError(f"malformed frame header: {exc}") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ProtocolError(f"frame header is not an object with a 'type': {hbytes[:200]!r}")
        arrays = [decode_array(self._recv_exact(length, deadline)) for length in lens]
        return header, arrays


@dataclass
class WorkItem:
    """One case to run: the case and the arrays made from its seed in the parent.

    `fault` (test hooks) is honoured by the worker only when CONV_PARITY_TEST_HOOKS=1 is set
    in its environment. (Injected bugs are targets of their own: conv_parity.backends.mutant.)
    """

    case: ConvCase
    x: np.ndarray
    weights: list[np.ndarray] = field(default_factory=list)
    fault: str | None = None
    #: Extra named arrays the mode needs (a cotangent), after the weights on the wire.
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    _wire: tuple[dict[str, Any], list[bytes]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def wire(self) -> tuple[dict[str, Any], list[bytes]]:
        """The case as JSON and the arrays as .npy bytes, made on first use and kept.

        Why kept: the engine sends each item to every backend, and encoding is a large part of
        the parent's per-case work. So the arrays must not change after a first run.
        """
        if self._wire is None:
            arrays = (self.x, *self.weights, *self.extras.values())
            self._wire = (self.case.to_json(), [encode_array(a) for a in arrays])
        return self._wire
