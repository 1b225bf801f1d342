"""Docker's copy-up: a new, empty volume mounted where the image has content starts with a
copy of that content, with owners, modes, times, extended attributes, hard links, symbolic
links and special files as they are in the image.

Nothing is followed: symbolic links are copied as links, every stat is an lstat, so a link
in the image can neither pull host files into the volume nor push writes out of it. The
source directory itself is found by the caller inside the container's root filesystem.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import suppress


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
    if not stat.S_ISDIR(st.st_mode) or not is_empty(dest):
        return False
    links: dict[tuple[int, int], str] = {}
    _copy_dir(source, dest, links)
    _copy_meta(source, dest, st)
    return True


def _copy_dir(src: str, dst: str, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        s, d = entry.path, os.path.join(dst, entry.name)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(d, 0o700)
            _copy_dir(s, d, links)
            _copy_meta(s, d, st)
            continue
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], d, follow_symlinks=False)
            continue
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(mode):
            _copy_file(s, d)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(d, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        else:  # sockets are not content
            continue
        _copy_meta(s, d, st)
        if st.st_nlink > 1:
            links[key] = d


def _copy_file(src: str, dst: str) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
        try:
            size = os.fstat(fin).st_size
            copied = 0
            while copied < size:
                try:
                    n = os.copy_file_range(fin, fout, size - copied)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    n = _copy_plain(fin, fout)
                if n == 0:
                    break
                copied += n
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_plain(fin: int, fout: int) -> int:
    total = 0
    while chunk := os.read(fin, 1 << 20):
        os.write(fout, chunk)
        total += len(chunk)
    return total


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    """Owner, then mode (chown clears setuid bits), xattrs, then times."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    with suppress(OSError):
        for name in os.listxattr(src, follow_symlinks=False):
            with suppress(OSError):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                            follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
