"""Reading MNIST-family files: the IDX format and torchvision's folder layout.

IDX (http://yann.lecun.com/exdb/mnist/): a big-endian header — magic number
``0x0000 TT DD`` (TT = 0x08 for uint8, DD = number of dimensions), then one
uint32 per dimension — followed by the raw values. Parsed with numpy so no
torchvision is needed and nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from actlab.errors import ActlabError

IMAGES_MAGIC = 2051  # uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # uint8, 1 dimension (count)
SIDE = 28  # MNIST and Fashion-MNIST images are 28x28


def read_file(path: Path | str, data: bytes | None = None) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in ``.gz``.

    ``data`` gives the (still compressed) bytes when they do not come from the
    file system, e.g. package resources; ``path`` then only names them.
    """
    name = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ActlabError(f"cannot read {name}: {exc.strerror or exc}") from None
    if not name.endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # bad header, truncated stream, bad CRC
        raise ActlabError(f"{name} is not a valid gzip file ({exc})") from None


def parse_idx(data: bytes, *, magic: int, source: str) -> np.ndarray:
    """The uint8 array stored in IDX bytes; ``source`` names the file in errors."""
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise ActlabError(f"{source} is truncated: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ActlabError(f"{source} is not an IDX {kind} file: magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ActlabError(f"{source} is truncated inside its IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ActlabError(
            f"{source} is truncated or corrupt: its header {dims} promises {expected} bytes, the file has {len(data)}"
        )
    if magic == IMAGES_MAGIC and dims[1:] != (SIDE, SIDE):
        raise ActlabError(f"{source} holds {dims[1]}x{dims[2]} images, expected {SIDE}x{SIDE}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def layout_hint(folder: str) -> str:
    return (
        f"expected torchvision's layout <data_dir>/{folder}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz] "
        f"(data_dir may also be the {folder} or raw folder itself); nothing is downloaded"
    )


def find_raw_file(data_dir: Path, folder: str, stem: str) -> Path:
    """The path of ``stem`` or ``stem.gz`` in torchvision's layout under ``data_dir``."""
    if not data_dir.is_dir():
        raise ActlabError(f"data directory {data_dir} does not exist; {layout_hint(folder)}")
    candidates = (data_dir / folder / "raw", data_dir / "raw", data_dir)
    for directory in candidates:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    looked = ", ".join(str(d) for d in candidates)
    raise ActlabError(f"{folder} file {stem}[.gz] not found (looked in {looked}); {layout_hint(folder)}")


def load_idx_pair(data_dir: Path, folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of ``split`` ("train" or "t10k")."""
    images_path = find_raw_file(data_dir, folder, f"{split}-images-idx3-ubyte")
    labels_path = find_raw_file(data_dir, folder, f"{split}-labels-idx1-ubyte")
    images = parse_idx(read_file(images_path), magic=IMAGES_MAGIC, source=str(images_path))
    labels = parse_idx(read_file(labels_path), magic=LABELS_MAGIC, source=str(labels_path))
    if len(images) != len(labels):
        raise ActlabError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ActlabError(f"{labels_path} is corrupt: label {int(labels.max())} outside 0..9")
    return images, labels
