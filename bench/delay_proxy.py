"""A TCP forwarder that adds a fixed delay in each direction (these kernels have no netem).

``DelayProxy({"homelab1": ("10.213.7.21", 22)}, round_trip_ms=25)`` listens on a free local
port per host and forwards to it, holding every chunk ``round_trip_ms / 2`` before passing it
on, in order. :func:`write_ssh_files` writes an SSH config and known_hosts that reach the lab's
hosts through it under their own names (tinsnip's lab mode reads them via TINSNIP_LAB_DIR).
"""
from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from pathlib import Path


class DelayProxy:
    def __init__(self, targets: dict[str, tuple[str, int]], round_trip_ms: float = 25.0):
        self.targets, self.one_way = targets, round_trip_ms / 2000.0
        self.ports: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        for name, target in self.targets.items():
            server = self.loop.run_until_complete(
                asyncio.start_server(lambda r, w, t=target: self._client(r, w, t), "127.0.0.1", 0))
            self.ports[name] = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer, target):
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        for w in (writer, up_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader, writer):
        """Copy ``reader`` to ``writer``, each chunk leaving ``one_way`` seconds after it came."""
        queue: asyncio.Queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((time.monotonic() + self.one_way, data or None))
                if not data:
                    break
        except (ConnectionError, OSError):
            await queue.put((time.monotonic(), None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass

    def close(self):
        """Stop forwarding: every connection's tasks cancelled and ended, then the loop."""
        async def stop():
            self.loop.set_exception_handler(lambda loop, context: None)  # cancelled on purpose
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def write_ssh_files(lab_dir: Path, out_dir: Path, ports: dict[str, int]) -> Path:
    """An SSH config and known_hosts in ``out_dir`` reaching each host of ``ports`` through the
    proxy (127.0.0.1:PORT, the host's own key); the client key is the lab's. Returns out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = {}
    for line in (lab_dir / "known_hosts").read_text().splitlines():
        names, _, key = line.partition(" ")
        for n in names.split(","):
            keys[n] = key
    config, known = [], []
    for host, port in ports.items():
        config.append(f"Host {host}\n    HostName 127.0.0.1\n    Port {port}\n    User root\n"
                      f"    IdentityFile {lab_dir / 'id_ed25519'}\n    IdentitiesOnly yes\n"
                      f"    UserKnownHostsFile {out_dir / 'known_hosts'}\n"
                      f"    StrictHostKeyChecking yes\n    CheckHostIP no\n")
        known.append(f"[127.0.0.1]:{port} {keys[host]}")
    (out_dir / "ssh_config").write_text("\n".join(config))
    (out_dir / "known_hosts").write_text("\n".join(known) + "\n")
    for extra in ("extra-hosts", "state.json"):
        if (lab_dir / extra).exists():
            shutil.copy(lab_dir / extra, out_dir / extra)
    return out_dir
