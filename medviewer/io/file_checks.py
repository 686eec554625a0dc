"""Checks made before and after a native read, so damaged or lying files are refused.

SimpleITK zero-fills a truncated .nii.gz and a truncated JPEG, follows a MetaImage or
NRRD header to any data file on the disk, and allocates whatever a header claims. Each
function here returns a message (or raises a ``MedviewerError``) naming what is wrong.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, field

from medviewer.core.errors import CorruptFileError, MedviewerError

#: Deflate cannot compress better than about 1032:1; a gzip file claiming more is lying.
MAX_DEFLATE_RATIO = 1100


def require_readable(path: str) -> None:
    """Refuse a file the user may not read, saying so (ITK would say it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise MedviewerError("permission denied: this user may not read the file (check its permissions)", path) from None
    except IsADirectoryError:
        raise MedviewerError("is a folder, not a file", path) from None
    except OSError as error:
        raise CorruptFileError(f"cannot be read: {error.strerror or error}", path) from None


def human_bytes(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.3g} {unit}"
        count /= 1000.0
    return f"{count:.3g} PB"


# ---------------------------------------------------------------------------- gzip
def gzip_shortfall(path: str, expected: int) -> tuple[int | None, str | None]:
    """(bytes inflated, problem): problem is None when the file inflates to ``expected`` bytes intact.

    The trailer (the size modulo 2**32) answers for single-member files without reading
    them; a mismatch, or a multi-member file, is settled by inflating the whole stream
    (which also checks every member's CRC); bytes inflated is None when the trailer sufficed.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            trailer_size = struct.unpack("<I", handle.read(4))[0]
    except OSError as error:
        return 0, f"cannot be read: {error}"
    if trailer_size == expected % (1 << 32):
        return None, None
    produced = 0
    inflater, fed = zlib.decompressobj(31), False  # gzip wrapper: checks each member's CRC and size
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                while chunk and (fed or chunk.strip(b"\0")):  # zero padding after the last member is allowed
                    fed = True
                    produced += len(inflater.decompress(chunk))
                    chunk = b""
                    if inflater.eof:  # next member (bgzip and concatenated files have several)
                        chunk, inflater, fed = inflater.unused_data, zlib.decompressobj(31), False
    except zlib.error as error:
        return produced, f"the gzip data is damaged after {produced} of {expected} bytes ({error})"
    except OSError as error:
        return produced, f"cannot be read: {error}"
    if fed:  # the last member has no end
        return produced, f"the gzip stream ends after {produced} of the {expected} bytes the header describes"
    if produced < expected:
        return produced, f"the file holds {produced} of the {expected} bytes the header describes"
    return produced, None


# ---------------------------------------------------------------------------- 2D rasters
def raster_truncation(path: str) -> str | None:
    """For JPEG and PNG content: a message when the file lacks its end marker (EOI / IEND chunk).

    The content decides, not the extension: ITK reads a PNG named .jpg as the PNG it is.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        return f"cannot be read: {error}"
    if data.startswith(b"\xff\xd8"):
        # Marker bytes FF D9 (end of image) cannot occur inside entropy-coded data, so the
        # last scan (FF DA) must be followed by one.
        if data.rfind(b"\xff\xd9") < max(data.rfind(b"\xff\xda"), 2):
            return f"the JPEG file is truncated: its end-of-image marker is missing ({len(data)} bytes present)"
    elif data.startswith(b"\x89PNG\r\n\x1a\n") and data.rfind(b"IEND\xaeB`\x82") < 0:
        return f"the PNG file is truncated: its IEND chunk is missing ({len(data)} bytes present)"
    return None


# ---------------------------------------------------------------------------- detached data
@dataclass
class DataLayout:
    """Where a MetaImage or NRRD header keeps its voxels."""

    #: Data files named by the header (empty when the voxels follow the header).
    files: list[str] = field(default_factory=list)
    #: Bytes before the voxels in the file that holds them (the header itself when inline).
    offset: int = 0
    #: True when the voxels are compressed or text (their size says little).
    encoded: bool = False
    #: bzip2 can shrink runs almost without bound: no size plausibility check.
    unbounded: bool = False


def data_layout(path: str, extension: str) -> DataLayout:
    """Parse the data-file fields of a .mhd/.mha or .nhdr/.nrrd header (refusing files outside its folder)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return DataLayout()
    layout = DataLayout()
    folder = os.path.dirname(os.path.abspath(path))
    lines = head.split(b"\n")
    position = 0
    if extension in (".mhd", ".mha"):
        for number, raw in enumerate(lines):
            position += len(raw) + 1
            key, _, value = raw.decode("latin-1").partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "compresseddata":
                layout.encoded = value.lower() == "true"
            elif key == "elementdatafile":
                if value.upper() == "LOCAL":
                    layout.offset = position
                elif value.upper().startswith("LIST"):
                    layout.files = [line.decode("latin-1").strip() for line in lines[number + 1 :] if line.strip()]
                else:
                    layout.files = [value.split()[0] if "%" in value else value]
                break
    else:
        for number, raw in enumerate(lines):
            position += len(raw) + 1
            text = raw.decode("latin-1").strip()
            if number and not text:  # the blank line that ends a NRRD header
                layout.offset = position
                break
            key, _, value = text.partition(":")
            key, value = key.strip().lower(), value.strip().lstrip("=").strip()
            if key == "encoding":
                layout.encoded = value.lower() not in ("raw",)
                layout.unbounded = value.lower() in ("bzip2", "bz2")
            elif key in ("data file", "datafile"):
                if value.upper().startswith("LIST"):
                    layout.files = [line.decode("latin-1").strip() for line in lines[number + 1 :] if line.strip()]
                else:
                    layout.files = [value.split()[0] if "%" in value else value]
                break
    for name in layout.files:
        _require_inside(name, folder, path)
    layout.files = [os.path.join(folder, name) for name in layout.files]
    return layout


def _require_inside(name: str, folder: str, header: str) -> None:
    target = os.path.realpath(os.path.join(folder, name))
    root = os.path.realpath(folder)
    if os.path.isabs(name) or os.path.commonpath([root, target]) != root:
        raise CorruptFileError(
            f"the header names the data file '{name}', which is outside the header's folder; "
            "medviewer reads only data files next to (or below) their header", header
        )


def data_shortfall(path: str, layout: DataLayout, needed: int) -> str | None:
    """For uncompressed data: a message when the data holds fewer bytes than the header describes."""
    if layout.encoded or len(layout.files) > 1:
        return None
    if layout.files:
        data = layout.files[0]
        if "%" in os.path.basename(data):
            return None
        if not os.path.isfile(data):
            return f"the data file '{os.path.basename(data)}' named by the header does not exist"
        available = os.path.getsize(data)
        where = f"the data file '{os.path.basename(data)}'"
    else:
        available = os.path.getsize(path) - layout.offset
        where = "the file"
    if available < needed:
        return f"{where} is truncated: it holds {max(available, 0)} of the {needed} bytes of voxels the header describes"
    return None


def implausible_size(size: tuple[int, ...], needed: int, stored: int, compressed: bool) -> str | None:
    """A message when a header claims more voxel bytes than ``stored`` bytes could hold."""
    limit = stored * MAX_DEFLATE_RATIO if compressed else stored
    if needed <= limit:
        return None
    claim = " x ".join(str(v) for v in size)
    return (f"the header claims {claim} voxels ({human_bytes(needed)}), but the file holds only {human_bytes(stored)}"
            + (", which cannot decompress to that much" if compressed else "")
            + ": the header is damaged or the file truncated")


# ---------------------------------------------------------------------------- memory
def available_memory() -> int | None:
    """Bytes this process can still allocate (RAM free for use plus free swap), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.split()[1:2]}
        return info.get("MemAvailable", info.get("MemFree", 0)) + info.get("SwapFree", 0)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def require_memory(path: str, size: tuple[int, ...], needed: int) -> None:
    """Refuse, before allocating, an image that cannot fit in this computer's memory."""
    available = available_memory()
    if available is None or needed <= available:
        return
    claim = " x ".join(str(v) for v in size)
    raise MedviewerError(
        f"the image ({claim} voxels) needs {human_bytes(needed)} of memory, but only {human_bytes(available)} "
        "are available on this computer", path
    )


def voxel_bytes(size: tuple[int, ...], bytes_per_pixel: int) -> int:
    return math.prod(int(v) for v in size) * int(bytes_per_pixel)


