"""Framing: round trips, and every malformed or truncated input is a quick ProtocolError."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time

import numpy as np
import pytest

from conv_parity.workers.protocol import (
    MAGIC,
    Channel,
    ChannelClosed,
    FrameTimeout,
    ProtocolError,
    decode_array,
    encode_array,
    encode_frame,
)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    ca, cb = Channel(a), Channel(b)
    yield ca, cb
    ca.close()
    cb.close()


ARRAYS = [
    np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    np.float64(2.5),
    np.zeros((0, 3), np.float16),
    np.ones(3, ">i8"),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.arange(12.0).reshape(3, 4)[:, ::2],  # not contiguous
    np.array([True, False]),
]


@pytest.mark.parametrize("a", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_array_codec_round_trip_and_is_npy(a):
    data = encode_array(a)
    ref = io.BytesIO()
    np.save(ref, a, allow_pickle=False)
    back = decode_array(bytearray(data))
    assert back.dtype == a.dtype and back.shape == a.shape
    np.testing.assert_array_equal(back, a)
    # What np.save writes is accepted, and what we write is what np.load reads.
    np.testing.assert_array_equal(decode_array(ref.getvalue()), a)
    np.testing.assert_array_equal(np.load(io.BytesIO(data), allow_pickle=False), a)


def test_frame_round_trip(pair):
    a, b = pair
    arrays = [np.random.default_rng(0).standard_normal((2, 5, 5, 3)).astype("f4"), np.arange(3)]
    a.send({"type": "case", "seq": 7, "case": {"layer": "Conv2D"}}, arrays)
    header, got = b.recv(timeout=5)
    assert header == {"type": "case", "seq": 7, "case": {"layer": "Conv2D"}}
    for x, y in zip(arrays, got):
        np.testing.assert_array_equal(x, y)
    got[0][0, 0, 0, 0] = 1.0  # decoded arrays are ordinary writable arrays


def test_large_frame_streams_through_a_small_socket_buffer(pair):
    a, b = pair
    big = np.random.default_rng(1).standard_normal((64, 64, 64, 4))  # 8 MiB
    t = threading.Thread(target=a.send, args=({"type": "result"}, [big]))
    t.start()
    _, (got,) = b.recv(timeout=30)
    t.join()
    np.testing.assert_array_equal(got, big)


def test_object_arrays_never_cross(pair):
    with pytest.raises(ProtocolError, match="object"):
        encode_array(np.array([{"a": 1}], dtype=object))
    buf = io.BytesIO()
    np.save(buf, np.array([1, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ProtocolError):
        decode_array(buf.getvalue())


def _quick(fn, limit=2.0):
    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as info:
        fn()
    assert time.monotonic() - t0 < limit
    return info.value


def test_clean_eof_between_frames_is_channel_closed(pair):
    a, b = pair
    a.close()
    exc = _quick(lambda: b.recv(timeout=10))
    assert isinstance(exc, ChannelClosed)


@pytest.mark.parametrize("cut", [3, 12, 20, 40, -1])
def test_truncated_frame_is_protocol_error_not_hang(pair, cut):
    a, b = pair
    frame = encode_frame({"type": "result", "seq": 1}, [np.arange(10.0)])
    a.send_raw(frame[:cut])
    a.close()
    exc = _quick(lambda: b.recv(timeout=10))
    assert not isinstance(exc, ChannelClosed)
    assert "truncated" in str(exc)


def test_partial_frame_then_silence_times_out(pair):
    a, b = pair
    a.send_raw(encode_frame({"type": "result"}, [np.arange(10.0)])[:15])
    exc = _quick(lambda: b.recv(timeout=0.3))
    assert isinstance(exc, FrameTimeout) and "mid-frame" in str(exc)


def test_nothing_arrives_times_out(pair):
    _, b = pair
    exc = _quick(lambda: b.recv(timeout=0.2))
    assert isinstance(exc, FrameTimeout)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"garbage!" * 4, "magic"),
        (struct.pack("!4sII", MAGIC, 1 << 30, 0), "header length"),
        (struct.pack("!4sII", MAGIC, 10, 1000), "arrays"),
        (struct.pack("!4sIIQ", MAGIC, 2, 1, 1 << 60) + b"{}", "array of"),
        (struct.pack("!4sII", MAGIC, 5, 0) + b"{nope", "malformed frame header"),
        (struct.pack("!4sII", MAGIC, 2, 0) + b"[]", "not an object"),
        (struct.pack("!4sIIQ", MAGIC, 16, 1, 5) + b'{"type":"case"} ' + b"hello", "array payload"),
    ],
    ids=["magic", "huge-header", "many-arrays", "huge-array", "bad-json", "not-object", "bad-npy"],
)
def test_malformed_frames(pair, data, match):
    a, b = pair
    a.send_raw(data)
    exc = _quick(lambda: b.recv(timeout=5))
    assert match in str(exc)


def test_npy_with_wrong_length_is_rejected():
    data = encode_array(np.arange(10.0))
    with pytest.raises(ProtocolError, match="data bytes"):
        decode_array(data[:-8])


def test_frames_sent_in_one_write_are_read_one_by_one(pair):
    """Read-ahead keeps what it over-fetched: small and big frames, back to back, all intact."""
    a, b = pair
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(n) for n in (3, 20_000, 1, 70_000, 5)]  # around the read-ahead
    frames = [encode_frame({"type": "result", "seq": i}, [x]) for i, x in enumerate(arrays)]
    t = threading.Thread(target=a.send_raw, args=(b"".join(frames),))
    t.start()
    for i, x in enumerate(arrays):
        header, (got,) = b.recv(timeout=10)
        assert header["seq"] == i
        np.testing.assert_array_equal(got, x)
    t.join()
    exc = _quick(lambda: b.recv(timeout=0.2))
    assert isinstance(exc, FrameTimeout)  # nothing left over, nothing invented


def test_has_data_never_blocks_and_sees_buffered_bytes_and_eof(pair):
    a, b = pair
    assert not b.has_data()
    a.send_raw(encode_frame({"type": "one"}) + encode_frame({"type": "two"}))
    deadline = time.monotonic() + 5
    while not b.has_data():
        assert time.monotonic() < deadline
    assert b.recv(timeout=5)[0]["type"] == "one"
    assert b.has_data()  # the second frame may already sit in the read-ahead buffer
    assert b.recv(timeout=5)[0]["type"] == "two"
    assert not b.has_data()
    a.close()
    assert b.has_data()  # EOF: a read would not block (it reports ChannelClosed)
    assert isinstance(_quick(lambda: b.recv(timeout=5)), ChannelClosed)


def test_cached_npy_header_still_checks_the_payload_length():
    data = encode_array(np.arange(7.0))
    np.testing.assert_array_equal(decode_array(data), np.arange(7.0))  # header now cached
    with pytest.raises(ProtocolError, match="data bytes"):
        decode_array(data + b"\0" * 8)


def test_error_text_loses_terminal_colour_codes() -> None:
    from conv_parity.workers.context import error_record, strip_ansi

    assert strip_ansi("\x1b[1m\x1b[31mValueError\x1b[0m: bad") == "ValueError: bad"
    err = error_record(ValueError("\x1b[1mKeras says\x1b[0m no"), "call")
    assert err["message"] == "Keras says no" and "\x1b" not in err["traceback"]
