"""Docker's copy-up: a new, empty volume mounted where the image has content starts with a
copy of that content, with owners, modes, times, extended attributes, hard links, symbolic
links and special files as they are in the image.

Nothing is followed on either side. The source is the container's own root filesystem
(found by the caller inside the rootfs, and not running yet): every stat there is an
lstat and links are copied as links. The destination may be shared with a running
container (a named volume), so it is only ever reached through directory descriptors,
one name at a time with O_NOFOLLOW: a symlink swapped in under us fails the copy instead
of sending a write out of the volume.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import suppress
from dataclasses import dataclass, field

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Links:
    """Hard links seen: an O_PATH descriptor of the first copy and how many links are left."""

    first: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def close(self) -> None:
        for fd, _ in self.first.values():
            os.close(fd)
        self.first.clear()


def is_empty(path: str) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def copy_up(source: str, dest: str) -> bool:
    """Copy the tree at ``source`` into the empty directory ``dest``; False (nothing done)
    when ``source`` is not a directory or ``dest`` is not empty."""
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    dfd = os.open(dest, _DIR)
    links = _Links()
    try:
        if os.listdir(dfd):
            return False
        _copy_dir(source, dfd, links)
        _copy_meta(source, dfd, st)
    finally:
        links.close()
        os.close(dfd)
    return True


def _copy_dir(src: str, dfd: int, links: _Links) -> None:
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(entry.name, 0o700, dir_fd=dfd)
            sub = os.open(entry.name, _DIR, dir_fd=dfd)
            try:
                _copy_dir(entry.path, sub, links)
                _copy_meta(entry.path, sub, st)
            finally:
                os.close(sub)
        else:
            _copy_entry(entry.path, entry.name, dfd, st, links)


def _copy_entry(src: str, name: str, dfd: int, st: os.stat_result, links: _Links) -> None:
    mode = st.st_mode
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links.first:
        fd, left = links.first[key]
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
        if left <= 1:
            os.close(fd)
            del links.first[key]
        else:
            links.first[key] = (fd, left - 1)
        return
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), name, dir_fd=dfd)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        return
    if stat.S_ISREG(mode):
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            _copy_data(src, fd)
            _copy_meta(src, fd, st)
        finally:
            os.close(fd)
    elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        if stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=dfd)
        else:
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
        fd = os.open(name, _PATH, dir_fd=dfd)  # no open for I/O of a fifo or a device
        try:
            _copy_meta(src, fd, st, by_path=True)
        finally:
            os.close(fd)
    else:  # sockets are not content
        return
    if st.st_nlink > 1:
        links.first[key] = (os.open(name, _PATH, dir_fd=dfd), st.st_nlink - 1)


def _copy_data(src: str, fout: int) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fin).st_size
        copied = 0
        while copied < size:
            try:
                n = os.copy_file_range(fin, fout, size - copied)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                     errno.EOPNOTSUPP):
                    raise
                n = _copy_plain(fin, fout)
            if n == 0:
                break
            copied += n
    finally:
        os.close(fin)


def _copy_plain(fin: int, fout: int) -> int:
    total = 0
    while chunk := os.read(fin, 1 << 20):
        os.write(fout, chunk)
        total += len(chunk)
    return total


def _copy_meta(src: str, fd: int, st: os.stat_result, by_path: bool = False) -> None:
    """Owner, then mode (chown clears setuid bits), xattrs, then times, on the copy open as
    ``fd`` (an O_PATH descriptor, reached through /proc/self/fd, when ``by_path``)."""
    target: int | str = f"/proc/self/fd/{fd}" if by_path else fd
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    with suppress(OSError):
        for name in os.listxattr(src, follow_symlinks=False):
            with suppress(OSError):
                os.setxattr(target, name, os.getxattr(src, name, follow_symlinks=False))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
