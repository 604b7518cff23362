"""Pod port-forward sessions: what the kubelet does behind pods/portforward.

apiserver.py negotiates the upgrade; the classes here then serve the
upgraded connection.  ChannelPortForward speaks WebSocket
v4.channel.k8s.io (kube-rs), SpdyPortForward speaks SPDY/3.1, either
directly or tunnelled in WebSocket (kubectl).  Both reach the pod through
PodPorts, which maps port 15000 to a local Envoy admin address and treats
every other port as closed, with the kubelet's error text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import struct
import uuid

import streamproto as wire

POD_CONNECT_TIMEOUT_S = 5.0
READ_CHUNK = 32 * 1024
FORWARDED_POD_PORT = 15000    # the Envoy admin port of an Istio sidecar


@dataclasses.dataclass(frozen=True)
class SessionFaults:
    """Port-forward failure modes (see apiserver.py's --portforward-* flags)."""

    cut_after: int | None = None   # bytes from the pod before the connection drops
    hang: bool = False             # accept streams, never serve them
    together: Together | None = None  # shared by every session: see Together
    latency: float = 0.0           # seconds before client bytes reach the pod (--latency)


class Together:
    """--portforward-together N: dials to an Envoy admin port are held until N have been asked
    for, then all go through. A client that opens fewer port-forwards at once gets no answer
    from the first ones, so a test sees how many it opens together (a kubelet never waits).
    apiserver.py's --lists-together holds list requests the same way."""

    def __init__(self, size: int):
        self.size = size
        self.asked = 0
        self.reached = asyncio.Event()

    async def wait(self) -> None:
        self.asked += 1
        if self.asked >= self.size:
            self.reached.set()
        await self.reached.wait()


class PortForwardError(Exception):
    """What the kubelet would write on a port's error stream."""


class PodPorts:
    """Reaches one pod's ports: 15000 maps to an Envoy admin, others are closed."""

    def __init__(self, pod: dict, admin: tuple[str, int] | None, together: Together | None = None):
        self.pod = pod
        self.admin = admin
        self.together = together

    def sandbox_id(self) -> str:
        uid = self.pod["metadata"].get("uid") or self.pod["metadata"]["name"]
        return hashlib.sha256(uid.encode()).hexdigest()

    def refused(self, port: int) -> PortForwardError:
        """containerd's message for a port nothing listens on, wrapped by the kubelet."""
        sandbox = self.sandbox_id()
        netns = uuid.UUID(sandbox[:32])
        return PortForwardError(
            f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward "
            f'in network namespace "/var/run/netns/cni-{netns}": failed to connect to '
            f'localhost:{port} inside namespace "{sandbox}", IPv4: dial tcp4 127.0.0.1:{port}: '
            f"connect: connection refused IPv6 dial tcp6 [::1]:{port}: "
            f"connect: connection refused ")

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if port != FORWARDED_POD_PORT or self.admin is None:
            raise self.refused(port)
        if self.together is not None:
            await self.together.wait()
        try:
            return await asyncio.wait_for(asyncio.open_connection(*self.admin),
                                          POD_CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as error:
            raise self.refused(port) from error


class ConnectionCut(Exception):
    """--portforward-cut-after reached: the whole client connection must drop."""


async def copy_from_pod(reader: asyncio.StreamReader, send, cut_after: int | None) -> None:
    """Relay pod bytes through send() until EOF, or raise ConnectionCut at the limit."""
    sent = 0
    while True:
        try:
            chunk = await reader.read(READ_CHUNK)
        except ConnectionError:
            return
        if not chunk:
            return
        if cut_after is not None and sent + len(chunk) >= cut_after:
            await send(chunk[:cut_after - sent])
            raise ConnectionCut()
        sent += len(chunk)
        await send(chunk)


def close_quietly(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


class ChannelPortForward:
    """WebSocket v4.channel.k8s.io port-forward, served like the kubelet does.

    Per requested port i, channel 2i carries data and 2i+1 errors; the first
    message on each channel is the port as 2 little-endian bytes.  The socket
    closes once every port's pod connection has ended.
    """

    def __init__(self, websocket: wire.WebSocket, pod: PodPorts, ports: list[int],
                 faults: SessionFaults):
        self.websocket = websocket
        self.pod = pod
        self.ports = ports
        self.faults = faults
        self.pod_writers: dict[int, asyncio.StreamWriter] = {}

    async def run(self) -> None:
        for index, port in enumerate(self.ports):
            prefix = struct.pack("<H", port)
            await self.websocket.send_binary(bytes([2 * index]) + prefix)
            await self.websocket.send_binary(bytes([2 * index + 1]) + prefix)
        if self.faults.hang:
            while await self.websocket.receive() is not None:
                pass
            return
        # Dial every port before reading client messages, so that bytes the
        # client sends right after the handshake are not dropped.
        readers = {}
        for index, port in enumerate(self.ports):
            try:
                readers[index], self.pod_writers[index] = await self.pod.connect(port)
            except PortForwardError as error:
                await self.websocket.send_binary(bytes([2 * index + 1]) + str(error).encode())
        pumps = {asyncio.create_task(self.pump_from_pod(i, r)) for i, r in readers.items()}
        inbound = asyncio.create_task(self.relay_to_pods())
        pending = {inbound, *pumps}
        try:
            while inbound in pending and pending & pumps:  # client gone, or every port done
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for writer in self.pod_writers.values():
                close_quietly(writer)
        await self.websocket.close()

    async def pump_from_pod(self, index: int, reader: asyncio.StreamReader) -> None:
        channel = bytes([2 * index])
        try:
            await copy_from_pod(reader, lambda chunk: self.websocket.send_binary(channel + chunk),
                                self.faults.cut_after)
        except ConnectionCut:
            self.websocket.drop()

    async def relay_to_pods(self) -> None:
        while (message := await self.websocket.receive()) is not None:
            _, payload = message
            if len(payload) < 2 or payload[0] % 2:
                continue
            writer = self.pod_writers.get(payload[0] // 2)
            if writer is not None:
                if self.faults.latency:
                    await asyncio.sleep(self.faults.latency)
                writer.write(payload[1:])
                await writer.drain()


@dataclasses.dataclass
class SpdyStream:
    """One client-opened SPDY stream and the bytes it has delivered."""

    stream_id: int
    port: int
    inbound: asyncio.Queue = dataclasses.field(default_factory=asyncio.Queue)


class SpdyPortForward:
    """SPDY/3.1 port-forward server, direct or tunnelled in WebSocket.

    kubectl opens an error stream then a data stream per local connection,
    tagged with headers streamtype, port and requestID.  Each stream gets a
    SYN_REPLY; once both of a request's streams exist the pod port is
    dialled.  On a dial failure the message goes on the error stream; when
    the pod side ends both streams are finished with FIN, which is what
    kubectl waits for before closing its local connection.
    """

    def __init__(self, transport, pod: PodPorts, faults: SessionFaults):
        self.transport = transport
        self.pod = pod
        self.faults = faults
        self.codec = wire.SpdyCodec()
        self.pairs: dict[str, dict[str, SpdyStream]] = {}
        self.streams: dict[int, SpdyStream] = {}
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        try:
            while (data := await self.transport.read()):
                for frame in self.codec.feed(data):
                    if not await self.dispatch(frame):
                        return
        finally:
            for task in self.tasks:
                task.cancel()
            await self.transport.close()

    async def send(self, frame: bytes) -> None:
        await self.transport.write(frame)

    async def dispatch(self, frame) -> bool:
        """Handle one frame; False when the session is over (GOAWAY)."""
        if isinstance(frame, wire.DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                if frame.data:
                    stream.inbound.put_nowait(frame.data)
                if frame.fin:
                    stream.inbound.put_nowait(b"")
            return True
        if frame.kind == wire.SYN_STREAM:
            await self.open_stream(frame)
        elif frame.kind == wire.RST_STREAM:
            stream = self.streams.get(wire.frame_stream_id(frame))
            if stream is not None:
                stream.inbound.put_nowait(None)
        elif frame.kind == wire.PING and wire.ping_id(frame) % 2 == 1:
            await self.send(wire.ping_frame(wire.ping_id(frame)))  # echo client pings
        elif frame.kind == wire.GOAWAY:
            return False
        # SETTINGS, WINDOW_UPDATE, HEADERS: ignored; spdystream (the SPDY library
        # in kubectl and the kubelet) does no flow control either.
        return True

    async def open_stream(self, frame: wire.ControlFrame) -> None:
        stream_id, headers = self.codec.syn_stream_headers(frame)
        kind, port = headers.get("streamtype", ""), headers.get("port", "")
        if kind not in ("data", "error") or not port.isdigit() or not 0 < int(port) < 65536:
            await self.send(wire.rst_stream_frame(stream_id, wire.RST_CANCEL))
            return
        await self.send(self.codec.syn_reply(stream_id))
        stream = SpdyStream(stream_id, int(port))
        self.streams[stream_id] = stream
        request_id = headers.get("requestid") or str(stream_id - (2 if kind == "data" else 0))
        pair = self.pairs.setdefault(request_id, {})
        pair[kind] = stream
        if len(pair) == 2:
            self.spawn(self.forward(pair["data"], pair["error"]))

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def forward(self, data: SpdyStream, error: SpdyStream) -> None:
        if self.faults.hang:
            await asyncio.Event().wait()  # never dial, never answer; cancelled at session end
        writer = None
        try:
            reader, writer = await self.pod.connect(data.port)
            to_pod = asyncio.create_task(self.relay_to_pod(data, writer))
            try:
                await copy_from_pod(reader, lambda chunk: self.send(wire.data_frame(
                    data.stream_id, chunk)), self.faults.cut_after)
            finally:
                to_pod.cancel()
        except PortForwardError as failure:
            await self.send(wire.data_frame(error.stream_id, str(failure).encode()))
        except ConnectionCut:
            self.transport.drop()
            return
        finally:
            close_quietly(writer)
        await self.send(wire.data_frame(error.stream_id, b"", fin=True))
        await self.send(wire.data_frame(data.stream_id, b"", fin=True))

    async def relay_to_pod(self, data: SpdyStream, writer: asyncio.StreamWriter) -> None:
        """Client bytes to the pod; FIN half-closes, RST_STREAM closes."""
        while (chunk := await data.inbound.get()):
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            writer.write(chunk)
            await writer.drain()
        if chunk is None:
            writer.close()
        elif writer.can_write_eof():
            writer.write_eof()
