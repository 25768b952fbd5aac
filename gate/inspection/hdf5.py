"""Legacy .h5 model files, and the HDF5 weights inside .keras archives.

An .h5 model keeps its config as JSON text in root attributes, read here with
h5py and walked like config.json. Every object of the file (or of a
model.weights.h5) is then read, without following any link, and objects whose
data lives elsewhere are refused: tf-keras follows external and soft links,
object references, external and virtual datasets, so a weight could carry
/proc/self/environ into a published .tflite.
"""

from __future__ import annotations

import io
import math
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import ModelError
from gate.inspection.keras_config import KerasFindings, check_config, keras_findings, parse_json, writer_of
from gate.inspection.problems import damaged_file, raise_problems

if TYPE_CHECKING:
    import h5py

_H5_ATTRIBUTES = ("keras_version", "model_config", "training_config")
_UNREADABLE = "is not a readable HDF5 file"
_SAVE_H5 = 're-save the model with model.save("model.keras") (or model.save("model.h5"))'
# Keras 3 refuses datasets above 4 GiB that expand more than 1000x their stored bytes; tf-keras checks nothing.
_H5_BOMB_FLOOR_BYTES = 1 << 32
_H5_MAX_EXPANSION = 1000


def inspect_h5(path: Path, allowed: frozenset[str]) -> KerasFindings:
    """Check an .h5 model's config attributes, then every object of the file; raise ModelError on any problem."""
    import h5py  # only .h5 files need it: `import gate.inspection` stays light

    _check_global_heaps(str(path), path, _SAVE_H5)
    with damaged_file(str(path), _UNREADABLE, _SAVE_H5), h5py.File(path, "r") as h5:
        # Root attributes only: the config is JSON text, and nothing in the file is deserialized.
        attributes = {name: h5.attrs[name] for name in _H5_ATTRIBUTES if name in h5.attrs}
    texts = {name: _attribute_text(path, name, value) for name, value in attributes.items()}
    if "model_config" not in texts:
        raise ModelError(f"{path}: has no model_config attribute, so it holds only weights; {_SAVE_H5}")
    # Files without keras_version predate Keras 3: only Keras 2 wrote such files.
    writer = writer_of(path, "keras_version", texts["keras_version"]) if "keras_version" in texts else ("tf_keras", "")
    parsed = {name: parse_json(path, name, text) for name, text in texts.items() if name != "keras_version"}
    configs = [
        check_config(path, name, config, allowed, is_model=name == "model_config") for name, config in parsed.items()
    ]
    findings = keras_findings(path, writer, configs, parsed["model_config"])
    _check_storage(str(path), path, _SAVE_H5)
    return findings


def check_h5_storage(where: str, data: bytes, fix: str) -> None:
    """Refuse an HDF5 file (the weights of a .keras archive) holding objects whose data lives elsewhere."""
    _check_global_heaps(where, data, fix)
    _check_storage(where, data, fix)


@dataclass(frozen=True)
class _Stored:
    """One object of an HDF5 file, as far as the checks need it: read first, judged after the file is closed."""

    name: str
    link: str = "hard"  # "hard", "soft" or "external"
    target: str = ""  # where a soft or external link points
    reference_attributes: tuple[str, ...] = ()  # attributes holding object or region references
    holds_references: bool = False  # a dataset of references
    external_files: tuple[str, ...] = ()  # a dataset stored in other files
    is_virtual: bool = False
    declared_bytes: int = 0
    stored_bytes: int = 0


def _check_storage(where: str, source: Path | bytes, fix: str) -> None:
    """Refuse HDF5 objects whose data lives elsewhere: tf-keras would read it into the weights.

    An external dataset, a virtual dataset or a link can point at any file the
    gate can read (/proc/self/environ, a CI secret), and the converted model
    would carry its bytes into a published artifact. Keras never writes them.
    """
    import h5py

    with damaged_file(where, _UNREADABLE, fix), h5py.File(_file(source), "r") as h5:
        objects = _read_objects(h5)
    problems: list[str] = []
    for item in objects:
        problems += [
            f"{where}: attribute '{key}' of '{item.name}' holds HDF5 object references, which Keras never writes "
            f"and which can reach data no link shows; {fix}"
            for key in item.reference_attributes
        ]
        if item.link == "external":
            problems.append(
                f"{where}: '{item.name}' is an HDF5 external link to {item.target}, so loading would read another "
                f"file; {fix}"
            )
        elif item.link == "soft":
            problems.append(
                f"{where}: '{item.name}' is an HDF5 soft link to {item.target}, which Keras never writes; {fix}"
            )
        elif item.holds_references:
            problems.append(
                f"{where}: dataset '{item.name}' holds HDF5 object references, which Keras never writes and which "
                f"can reach data no link shows; {fix}"
            )
        elif item.external_files:
            problems.append(
                f"{where}: dataset '{item.name}' keeps its data in the outside file {', '.join(item.external_files)}, "
                f"so loading would read that file into the weights; {fix}"
            )
        elif item.is_virtual:
            problems.append(
                f"{where}: dataset '{item.name}' is a virtual dataset that maps data from other files, so loading "
                f"would read them into the weights; {fix}"
            )
        elif item.declared_bytes > _H5_BOMB_FLOOR_BYTES and item.declared_bytes > _H5_MAX_EXPANSION * item.stored_bytes:
            problems.append(
                f"{where}: dataset '{item.name}' declares {item.declared_bytes} bytes but stores {item.stored_bytes} "
                f"(a decompression bomb?); {fix}"
            )
    raise_problems(problems)


def _file(source: Path | bytes) -> Path | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _read_objects(h5: h5py.File) -> list[_Stored]:
    """The root and every object a link names, visiting links without following them."""
    objects = [_Stored("/", reference_attributes=_reference_attributes(h5.attrs))]
    failures: list[Exception] = []

    def visit(name: bytes) -> bool | None:
        try:
            text = name.decode("utf-8")
            objects.append(_read_object(h5, text, h5.get(text, getlink=True)))
        except Exception as exc:  # raised again below, once the visit has returned
            # An exception raised inside the callback comes out of h5py as SystemError ("<cyfunction
            # FastRLock.__exit__ ...> returned a result with an exception set"), which names nothing.
            failures.append(exc)
            return True  # any value but None ends the visit
        return None

    # What Group.visititems_links does, but with the link lookup inside the try: h5py's own lookup raises inside
    # the callback too (UnicodeDecodeError on a damaged name, KeyError on a damaged object header).
    h5.id.links.visit(visit)
    if failures:
        raise failures[0]
    return objects


def _read_object(h5: h5py.File, name: str, link: object) -> _Stored:
    import h5py

    if isinstance(link, h5py.ExternalLink):
        return _Stored(name, link="external", target=f"{link.filename}:{link.path}")
    if isinstance(link, h5py.SoftLink):
        return _Stored(name, link="soft", target=link.path)
    item = h5[name]
    references = _reference_attributes(item.attrs) if isinstance(link, h5py.HardLink) else ()
    if not isinstance(item, h5py.Dataset):
        return _Stored(name, reference_attributes=references)
    # Read only as far as the first reason to refuse, as the checks above judge them.
    if _holds_references(item.dtype):
        return _Stored(name, reference_attributes=references, holds_references=True)
    if item.external:
        files = tuple(sorted({os.fsdecode(entry[0]) for entry in item.external}))
        return _Stored(name, reference_attributes=references, external_files=files)
    if item.is_virtual:
        return _Stored(name, reference_attributes=references, is_virtual=True)
    declared = math.prod(item.shape or ()) * item.dtype.itemsize
    return _Stored(
        name, reference_attributes=references, declared_bytes=declared, stored_bytes=item.id.get_storage_size()
    )


def _reference_attributes(attributes: h5py.AttributeManager) -> tuple[str, ...]:
    return tuple(key for key in attributes if _holds_references(attributes.get_id(key).dtype))


def _holds_references(dtype: Any) -> bool:
    """Whether values of `dtype` (or of any field, element or sequence in it) are object or region references."""
    import h5py
    import numpy as np

    dtype = np.dtype(dtype)
    if h5py.check_dtype(ref=dtype) is not None:
        return True
    vlen = h5py.check_dtype(vlen=dtype)
    if vlen is not None and vlen not in (str, bytes):
        return _holds_references(vlen)
    if dtype.subdtype is not None:
        return _holds_references(dtype.subdtype[0])
    return any(_holds_references(field[0]) for field in (dtype.fields or {}).values())


def _attribute_text(path: Path, name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # also numpy.bytes_; Keras 2 wrote some attributes as bytes
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise ModelError(f"{path}: attribute {name} is not UTF-8 text; {_SAVE_H5}")


# --- the global heap ---------------------------------------------------------

_SUPERBLOCK_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_GLOBAL_HEAP_SIGNATURE = b"GCOL\x01"  # "GCOL" and version 1, the only version HDF5 reads


def _check_global_heaps(where: str, source: Path | bytes, fix: str) -> None:
    """Refuse a global heap collection on which the HDF5 library would loop forever.

    Variable-length strings (Keras' model_config, weight names) live in global
    heap collections. HDF5 1.14.6 decodes a collection's objects by stepping
    over each one's stored size (H5HG__cache_heap_deserialize in H5HGcache.c),
    and a free-space object (index 0) of size 0 steps by nothing: a zeroed run
    of bytes in a collection makes `h5py` hang in the first attribute read.
    Every collection HDF5 could read is found by its signature and walked the
    same way first; what HDF5 rejects by itself is left to it.
    """
    if isinstance(source, bytes):
        problem = _global_heap_problem(source)
    else:
        with damaged_file(where, _UNREADABLE, fix), source.open("rb") as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                return  # mmap cannot map an empty file; h5py says what is wrong with it
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
                problem = _global_heap_problem(data)
    if problem:
        raise ModelError(f"{where}: {_UNREADABLE} ({problem}); {fix}")


def _global_heap_problem(data: bytes | mmap.mmap) -> str | None:
    length_size = _length_size(data)
    if length_size is None:
        return None  # no HDF5 superblock: h5py refuses the file
    header = _aligned(8 + length_size)  # H5HG_SIZEOF_HDR and H5HG_SIZEOF_OBJHDR are both this
    start = data.find(_GLOBAL_HEAP_SIGNATURE)
    while start >= 0:
        end = start + int.from_bytes(data[start + 8 : start + 8 + length_size], "little")
        position = start + header
        # A collection that runs past the end of the file cannot be read: HDF5 reports it.
        while end <= len(data) and position + header <= end:
            index = int.from_bytes(data[position : position + 2], "little")
            size = int.from_bytes(data[position + 8 : position + 8 + length_size], "little")
            step = header + _aligned(size) if index else size  # a free-space object's size includes its header
            if step == 0:
                return f"the global heap at byte {start} holds an empty object at byte {position}, which HDF5 loops on"
            position += step
        start = data.find(_GLOBAL_HEAP_SIGNATURE, start + 1)
    return None


def _length_size(data: bytes | mmap.mmap) -> int | None:
    """The superblock's 'size of lengths': at byte 0, 512, 1024, 2048... (after a user block)."""
    offset = 0
    while offset + 16 <= len(data):
        if data[offset : offset + 8] == _SUPERBLOCK_SIGNATURE:
            version = data[offset + 8]
            return data[offset + (14 if version < 2 else 10)]
        offset = 512 if offset == 0 else offset * 2
    return None


def _aligned(size: int) -> int:
    return (size + 7) & ~7  # H5HG_ALIGN: global heap objects are 8-byte aligned
