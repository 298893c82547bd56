"""S3ImageStore throughput against moto's S3 server on 127.0.0.1 (started here, in its own process); prints figures.

    python benchmarks/s3_store.py [--images 300] [--size 256]

Measures put, get (checksum verified), a cold ``list`` (every record read), a warm ``list``
(ETags unchanged: one listing request) and ``store sync`` folder -> S3 -> folder. moto is a
slow, in-process server, so the figures bound medaug's own overhead rather than predict AWS.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medaug.adapters.logging import configure_logging
from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.stores.s3 import S3ImageStore
from medaug.adapters.stores.s3_client import make_s3_client
from medaug.application.services.sync import sync_stores
from medaug.domain import FundusImage, Grade, Provenance, Split
from medaug.domain.images import storage_key


def _png(seed: int, size: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _record(index: int) -> FundusImage:
    grade = Grade(index % 5)
    image_id = f"img-{index:05d}"
    return FundusImage(
        id=image_id,
        key=storage_key(Split.TRAIN, grade, image_id),
        grade=grade,
        split=Split.TRAIN,
        provenance=Provenance(generator="bench", original_name=f"{image_id}.jpg"),
    )


def _timed(label: str, count: int, func) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:7.2f} s  {count / seconds:8.1f} images/s")


def main() -> None:
    """Run the measurements and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (random, so PNGs are large)")
    args = parser.parse_args()
    configure_logging("console", "warning")

    from medaug.adapters.stores.config import S3StoreConfig

    host, port = "127.0.0.1", _free_port()
    server = _start_moto(host, port)
    config = S3StoreConfig(bucket="medaug-bench", prefix="bench", endpoint_url=f"http://{host}:{port}",
                           region="us-east-1", access_key_id="bench", secret_access_key="bench")
    client = make_s3_client(config)
    client.create_bucket(Bucket=config.bucket)
    images = [(_record(i), _png(i, args.size)) for i in range(args.images)]
    megabytes = sum(len(d) for _, d in images) / 1e6
    print(f"{args.images} random {args.size}px PNGs, {megabytes:.1f} MB, moto server on {host}:{port}")

    store = S3ImageStore(client, bucket=config.bucket, prefix=config.prefix)
    n = len(images)
    _timed("put", n, lambda: [store.put(r, d) for r, d in images])
    _timed("get (sha256 verified)", n, lambda: [store.get(r.id) for r, _ in images])
    cold = S3ImageStore(client, bucket=config.bucket, prefix=config.prefix)
    _timed("list, cold (reads every record)", n, cold.list)
    _timed("list, warm (one listing)", n, cold.list)
    _timed("exists", n, lambda: [cold.exists(r.id) for r, _ in images])

    with tempfile.TemporaryDirectory() as tmp:
        local = LocalImageStore(Path(tmp) / "src")
        for record, data in images:
            local.put(record, data)
        target = S3ImageStore(client, bucket=config.bucket, prefix="synced")
        _timed("store sync folder -> S3", n, lambda: sync_stores(local, target))
        _timed("store sync again (all identical)", n, lambda: sync_stores(local, target))
        back = LocalImageStore(Path(tmp) / "back")
        _timed("store sync S3 -> folder", n, lambda: sync_stores(target, back))
    server.terminate()
    server.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto(host: str, port: int) -> subprocess.Popen[bytes]:
    """moto's server in its own process, so its work does not share this process's GIL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.1):
            return server
        time.sleep(0.05)
    server.terminate()
    raise SystemExit("moto server did not start")


if __name__ == "__main__":
    main()
