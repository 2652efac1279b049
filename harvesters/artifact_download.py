"""MLflow artifact downloads with a byte cap: a file whose listed size is over the cap is never
fetched, and one whose size the listing does not give is streamed and stopped as soon as it passes
the cap (nothing partial is kept). Used by the MLflow harvester and by `modelport verify`.

MLflow's own `download_artifacts` writes whatever the server sends, so a registry that lists no sizes
(or lies about them) could fill the disk. Over HTTP (the tracking server's `mlflow-artifacts` proxy,
what remote registries serve) we stream the file ourselves through MLflow's request helper (the
same credentials, TLS and retry settings as the client); any other artifact store is downloaded only
when the listing gives a size within the cap.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from modelport.errors import BadRecordError

CHUNK_BYTES = 64 * 1024  # a stream stops at most this far past its cap
MAX_LISTED_FILES = 10_000  # a listing is a remote answer: bounded like everything else
MAX_LISTING_DEPTH = 8


class OverCap(BadRecordError):  # noqa: N818 — reads as the reason it is: "over cap"
    """A download passed its cap (or its listed size is over it); nothing of it was kept."""


class CannotCap(BadRecordError):  # noqa: N818
    """The size is unknown and the artifact store cannot be streamed with a cap: not downloaded."""


def walk(repo: Any, path: str = "", depth: int = 3, budget: list[int] | None = None) -> list[dict[str, Any]]:
    """The artifact listing under `path`, `depth` levels deep, at most MAX_LISTED_FILES entries:
    {"path", "is_dir", "size"} with size None where the store did not say."""
    budget = budget if budget is not None else [MAX_LISTED_FILES]
    out: list[dict[str, Any]] = []
    for fi in repo.list_artifacts(path or None):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        if fi.is_dir:
            out.append({"path": fi.path, "is_dir": True})
            if depth > 1:
                out.extend(walk(repo, fi.path, depth - 1, budget))
        else:
            size = fi.file_size if isinstance(fi.file_size, int) and fi.file_size >= 0 else None
            out.append({"path": fi.path, "is_dir": False, "size": size})
    return out


def _target(dst_dir: Path, path: str) -> Path:
    """Where `path` lands under `dst_dir`; a path that would leave it is refused."""
    root = dst_dir.resolve()
    target = (root / path).resolve()
    if root not in target.parents:
        raise ValueError(f"artifact path {path[:200]!r} leaves the download folder")
    return target


def download_file(repo: Any, path: str, dst_dir: Path, cap: int, size: int | None = None) -> Path:
    """Download one artifact file to `dst_dir/path`, at most `cap` bytes. `size` is what the listing
    said (None: unknown). Raises OverCap or CannotCap with the reason; leaves no partial file."""
    if size is not None and size > cap:
        raise OverCap(f"{path}: {size} bytes listed, over the cap of {cap} bytes; not downloaded")
    target = _target(dst_dir, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    if isinstance(repo, HttpArtifactRepository):
        _stream(repo, path, target, cap, size)
        return target
    if size is None:
        raise CannotCap(f"{path}: size not listed, and {type(repo).__name__} downloads cannot be stopped at a "
                        f"cap of {cap} bytes; not downloaded")
    local = Path(repo.download_artifacts(path, dst_path=str(dst_dir)))
    got = local.stat().st_size if local.is_file() else 0
    if got > cap:  # the listing was wrong
        local.unlink(missing_ok=True)
        raise OverCap(f"{path}: {got} bytes (listed {size}), over the cap of {cap} bytes; removed")
    return local


def _stream(repo: Any, path: str, target: Path, cap: int, listed: int | None) -> None:
    from mlflow.utils.rest_utils import augmented_raise_for_status, http_request

    # `_host_creds` is the repository's own (credentials and TLS options of the artifact URI): the
    # endpoint is resolved against the artifact URI exactly as HttpArtifactRepository._download_file does.
    resp = http_request(repo._host_creds, posixpath.join("/", path), "GET", stream=True)
    part = target.with_name(target.name + ".part")
    try:
        augmented_raise_for_status(resp)
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise OverCap(f"{path}: {declared} bytes announced, over the cap of {cap} bytes; not downloaded")
        got = 0
        with open(part, "wb") as f:
            for chunk in resp.iter_content(chunk_size=CHUNK_BYTES):
                got += len(chunk)
                if got > cap:
                    what = "size not listed" if listed is None else f"listed {listed} bytes"
                    raise OverCap(f"{path}: {what}; stopped after {got} bytes, over the cap of {cap} bytes")
                f.write(chunk)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(Exception):
            resp.close()


def download_tree(repo: Any, dst_dir: Path, cap: int, depth: int = MAX_LISTING_DEPTH) -> Path:
    """Every file of the artifact root into `dst_dir`, at most `cap` bytes together: listed sizes are
    checked before anything is fetched, unknown ones streamed against what is left of the cap. On
    OverCap or CannotCap the folder is removed (nothing partial kept) and the error raised."""
    files = [f for f in walk(repo, "", depth) if not f["is_dir"]]
    known = sum(f["size"] for f in files if f["size"] is not None)
    if known > cap:
        raise OverCap(f"artifacts of {known} bytes listed, over the cap of {cap} bytes; not downloaded")
    dst_dir.mkdir(parents=True, exist_ok=True)
    left = cap - known
    try:
        for f in sorted(files, key=lambda f: f["size"] is None):  # listed sizes first: they cannot overrun
            if f["size"] is not None:
                download_file(repo, f["path"], dst_dir, f["size"], f["size"])
            else:
                got = download_file(repo, f["path"], dst_dir, left).stat().st_size
                left -= got
    except (OverCap, CannotCap) as e:
        shutil.rmtree(dst_dir, ignore_errors=True)
        raise type(e)(f"{e} (all artifacts together may take {cap} bytes)") from e
    except BaseException:
        shutil.rmtree(dst_dir, ignore_errors=True)
        raise
    return dst_dir
