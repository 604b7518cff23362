"""Wire codecs the test API server needs for port-forward: WebSocket and SPDY/3.1.

Kubernetes clients reach a pod port through one of three framings, all
implemented here on top of asyncio streams:

* WebSocket with subprotocol ``v4.channel.k8s.io`` (kube-rs, client-go's
  exec-style clients): each binary message starts with a channel byte.
* SPDY/3.1 after an HTTP ``Upgrade: SPDY/3.1`` (kubectl's classic path).
* SPDY/3.1 carried inside WebSocket binary messages, subprotocol
  ``SPDY/3.1+portforward.k8s.io`` (kubectl >= 1.31's default path).

Only what a port-forward server needs is here: the server side of the
WebSocket handshake and framing (RFC 6455), and SPDY/3 framing with the
shared zlib header compression (draft-mbelshe-httpbis-spdy-00).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import struct
import zlib

# --- WebSocket (RFC 6455) ---------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_BINARY = 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CLOSE_LINGER_S = 2.0


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value that proves the server read the key."""
    digest = hashlib.sha1((key.strip() + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def websocket_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unfragmented, unmasked frame (servers never mask, RFC 6455 5.1)."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


async def read_websocket_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """Read one frame; returns (fin, opcode, unmasked payload)."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"websocket frame of {size} bytes is too large")
    mask = await reader.readexactly(4) if second & 0x80 else b""
    payload = await reader.readexactly(size)
    if mask:
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


class WebSocket:
    """Message-level server side of an upgraded WebSocket connection.

    receive() hides control frames: pings are answered, a close is echoed
    and reported as end of stream, fragments are joined.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.closed = False

    async def receive(self) -> tuple[int, bytes] | None:
        """Next data message as (opcode, payload); None once the peer is gone."""
        opcode, parts = None, []
        try:
            while True:
                fin, frame_opcode, payload = await read_websocket_frame(self.reader)
                if frame_opcode == OP_PING:
                    await self.send(OP_PONG, payload)
                elif frame_opcode == OP_CLOSE:
                    await self.send(OP_CLOSE, payload[:2])  # echo: closing handshake done
                    self.closed = True
                    return None
                elif frame_opcode != OP_PONG:
                    opcode = frame_opcode if opcode is None else opcode
                    parts.append(payload)
                    if fin:
                        return opcode, b"".join(parts)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            self.closed = True
            return None

    async def send(self, opcode: int, payload: bytes) -> None:
        if self.closed:
            return
        try:
            self.writer.write(websocket_frame(opcode, payload))
            await self.writer.drain()
        except ConnectionError:
            self.closed = True

    async def send_binary(self, payload: bytes) -> None:
        await self.send(OP_BINARY, payload)

    async def close(self) -> None:
        """Start the closing handshake and wait (bounded) for the peer's close.

        Closing TCP while the peer may still be sending makes the kernel
        answer with RST, which can discard bytes the peer has not read yet,
        such as a port-forward error message (RFC 6455 7.1.1).  Only call
        this when nothing else is reading; the TCP close is the caller's job.
        """
        if self.closed:
            return
        await self.send(OP_CLOSE, struct.pack("!H", CLOSE_NORMAL))
        self.closed = True
        try:
            async with asyncio.timeout(CLOSE_LINGER_S):
                while (await read_websocket_frame(self.reader))[1] != OP_CLOSE:
                    pass
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass

    def drop(self) -> None:
        """End the TCP connection without a close frame, like a cut network path.

        Bytes already written are still delivered first, so a test can
        count exactly what arrived before the cut.
        """
        self.closed = True
        self.writer.close()


# --- Byte transports that a SPDY session can run over -----------------------

class RawTransport:
    """A plain upgraded TCP connection (the ``Upgrade: SPDY/3.1`` path)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def read(self) -> bytes:
        try:
            return await self.reader.read(65536)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()

    def drop(self) -> None:
        self.writer.close()


class WebSocketTransport:
    """SPDY bytes tunnelled in WebSocket binary messages.

    client-go's TunnelingConnection writes each chunk as one binary message
    and treats the messages as one continuous byte stream, so message
    boundaries carry no meaning here.
    """

    def __init__(self, websocket: WebSocket):
        self.websocket = websocket

    async def read(self) -> bytes:
        """Next tunnelled bytes; b"" only at end of stream (the client also
        sends empty messages, which must not read as end of stream)."""
        while (message := await self.websocket.receive()) is not None:
            if message[1]:
                return message[1]
        return b""

    async def write(self, data: bytes) -> None:
        await self.websocket.send_binary(data)

    async def close(self) -> None:
        await self.websocket.close()
        self.websocket.writer.close()

    def drop(self) -> None:
        self.websocket.drop()


# --- SPDY/3.1 ---------------------------------------------------------------

SPDY_VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY = 1, 2, 3, 6, 7   # control frame types
FLAG_FIN = 0x01
RST_CANCEL = 5

# The SPDY/3 header-compression dictionary, built the way the spec lays it
# out: length-prefixed header names and common values, then a run of status
# codes, reason phrases, dates and media types.
_DICTIONARY_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow",
    "authorization", "cache-control", "connection", "content-base", "content-encoding",
    "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from",
    "host", "if-match", "if-modified-since", "if-none-match", "if-range",
    "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary",
    "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416"
    "417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server "
    "Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug "
    "Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,"
    "text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0."
)
# Adler-32 of the dictionary; zlib streams name their dictionary by it.
SPDY3_DICTIONARY_ADLER32 = 0xE3C6A7C2


def _spdy3_dictionary() -> bytes:
    prefixed = b"".join(struct.pack("!I", len(word)) + word.encode()
                        for word in _DICTIONARY_WORDS)
    return prefixed + _DICTIONARY_TAIL.encode()


SPDY3_DICTIONARY = _spdy3_dictionary()


@dataclasses.dataclass
class ControlFrame:
    kind: int
    flags: int
    payload: bytes


@dataclasses.dataclass
class DataFrame:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class SpdyCodec:
    """Frame parser and builder for one SPDY/3 connection.

    Header blocks of all frames on a connection share one zlib stream per
    direction, so a codec must see every frame of its connection in order.
    """

    def __init__(self):
        self.buffer = bytearray()
        self.inflater = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
        self.deflater = zlib.compressobj(level=9, zdict=SPDY3_DICTIONARY)

    def feed(self, data: bytes) -> list[ControlFrame | DataFrame]:
        """Append received bytes; return the frames they complete."""
        self.buffer += data
        frames = []
        while len(self.buffer) >= 8:
            word, flags_and_length = struct.unpack_from("!II", self.buffer)
            length = flags_and_length & 0xFFFFFF
            if len(self.buffer) < 8 + length:
                break
            payload = bytes(self.buffer[8:8 + length])
            del self.buffer[:8 + length]
            flags = flags_and_length >> 24
            if word & 0x80000000:
                frames.append(ControlFrame(word & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(word & 0x7FFFFFFF, flags, payload))
        return frames

    def syn_stream_headers(self, frame: ControlFrame) -> tuple[int, dict[str, str]]:
        """(stream id, headers) of a SYN_STREAM; header names are lowercase."""
        (stream_id,) = struct.unpack_from("!I", frame.payload)
        return stream_id & 0x7FFFFFFF, self._decode_headers(frame.payload[10:])

    def _decode_headers(self, block: bytes) -> dict[str, str]:
        raw = self.inflater.decompress(block)
        (count,) = struct.unpack_from("!I", raw)
        offset, headers = 4, {}
        for _ in range(count):
            name, offset = _length_prefixed(raw, offset)
            value, offset = _length_prefixed(raw, offset)
            headers[name.decode().lower()] = value.decode()
        return headers

    def _encode_headers(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack("!I", len(headers))
        for name, value in headers.items():
            raw += _with_length(name.lower().encode()) + _with_length(value.encode())
        return self.deflater.compress(raw) + self.deflater.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None) -> bytes:
        body = struct.pack("!I", stream_id) + self._encode_headers(headers or {})
        return control_frame(SYN_REPLY, 0, body)


def _length_prefixed(raw: bytes, offset: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from("!I", raw, offset)
    start = offset + 4
    return raw[start:start + size], start + size


def _with_length(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def control_frame(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | SPDY_VERSION, kind, flags << 24 | len(body)) + body


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack("!II", stream_id, flags << 24 | len(data)) + data


def rst_stream_frame(stream_id: int, status: int) -> bytes:
    return control_frame(RST_STREAM, 0, struct.pack("!II", stream_id, status))


def ping_id(frame: ControlFrame) -> int:
    return struct.unpack_from("!I", frame.payload)[0]


def ping_frame(identifier: int) -> bytes:
    return control_frame(PING, 0, struct.pack("!I", identifier))


def frame_stream_id(frame: ControlFrame) -> int:
    """Stream id of a SYN_REPLY, RST_STREAM, HEADERS or WINDOW_UPDATE frame."""
    return struct.unpack_from("!I", frame.payload)[0] & 0x7FFFFFFF
