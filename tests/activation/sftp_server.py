"""A real SFTP server (asyncssh) on 127.0.0.1 in a background event-loop thread, rooted at a folder.

Password auth for one user, and public-key auth for the keys in `authorized_keys` (`passwords = False` makes it
a key-only server, like LiveRamp's EU/AU endpoints); `logins` lists the methods clients tried, in order.
`host_key_line` is the public key to pin. `cut_after(n)` makes the next upload's
connection drop once `n` bytes of a file were written (a cut connection mid-file); `uploads` counts the files
opened for writing, `renames` the renames done.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import asyncssh

USER = "p360"
PASSWORD = "sftp-secret-Zq9"


class SftpServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key_line = self.host_key.export_public_key().decode().strip()
        self.cut_at: int | None = None
        self.uploads = 0
        self.renames = 0
        self.authorized_keys: list[asyncssh.SSHKey] = []
        self.passwords = True
        self.logins: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self._acceptor: Any = None

    def start(self) -> SftpServer:
        self.thread.start()
        self._acceptor = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def cut_after(self, nbytes: int | None) -> None:
        self.cut_at = nbytes

    async def _listen(self) -> Any:
        server = self

        class Auth(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return server.passwords

            def validate_password(self, username: str, password: str) -> bool:
                server.logins.append("password")
                return username == USER and password == PASSWORD

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                server.logins.append("publickey")
                wanted = key.export_public_key()
                return username == USER and any(k.export_public_key() == wanted for k in server.authorized_keys)

        class Sftp(asyncssh.SFTPServer):
            def __init__(self, chan: Any) -> None:
                super().__init__(chan, chroot=str(server.root).encode())

            def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
                if pflags & asyncssh.FXF_WRITE:
                    server.uploads += 1
                return super().open(path, pflags, attrs)

            def write(self, file_obj: Any, offset: int, data: bytes) -> Any:
                cut = server.cut_at
                if cut is not None and offset + len(data) > cut:
                    server.cut_at = None
                    written = super().write(file_obj, offset, data[: max(0, cut - offset)])
                    self.connection.abort()
                    return written
                return super().write(file_obj, offset, data)

            def rename(self, oldpath: bytes, newpath: bytes) -> Any:
                server.renames += 1
                return super().rename(oldpath, newpath)

            def posix_rename(self, oldpath: bytes, newpath: bytes) -> Any:
                server.renames += 1
                return super().posix_rename(oldpath, newpath)

        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            server_factory=Auth,
            sftp_factory=Sftp,
            allow_scp=False,
        )
