"""One serialization path for every fitted rule: dataclass fields <-> JSON, with key checks and a schema version.

A fitted rule is a frozen dataclass that also derives from :class:`FittedArtifact`. Its fields are the rule; the
file beside the model holds them plus the fit's record (how many cases, the validation table, a note), which
loading reads past. The class says how its file is laid out:

- ``FILE``: the file name in the fine-stage model folder;
- ``NEST``: None when the fields sit at the top level of the file, else the key that holds them
  (``review_rule.json`` keeps them under ``"rule"``);
- ``KEYS``: {field name: key in the file} where the two differ (``postprocessing.json`` writes ``components`` as
  ``component_rule``);
- ``RECORD_KEYS``: the keys of the fit's record that may sit beside top-level fields. Any other key is an error
  naming the file's keys and the known ones: a typo or a file of a newer version fails instead of being ignored.

Every file written carries ``schema_version`` (:data:`SCHEMA_VERSION`); files without it are version 1, the format
of models trained before the key existed, and load unchanged. A field whose default is itself a ``FittedArtifact``
is written as its dict and read back into that class; a field whose default is a tuple is written as a JSON list
and read back as a tuple.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from nnunet_thrombus.atomic_io import write_json

#: the version this code writes; files without ``schema_version`` are version 1
SCHEMA_VERSION = 1
VERSION_KEY = "schema_version"


class CalibrationFileError(ValueError):
    """A calibration file that cannot be read as its rule (the message names the file and the fix)."""


def _default(f: dataclasses.Field):
    """A field's default value (None without one): its type tells how to read the field back from JSON."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _plain(value):
    if isinstance(value, FittedArtifact):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class FittedArtifact:
    """Mixin for frozen dataclasses: ``to_dict`` / ``from_dict`` / ``save`` / ``load`` from the dataclass fields."""

    FILE: ClassVar[str] = ""
    NEST: ClassVar[str | None] = None
    KEYS: ClassVar[dict] = {}
    RECORD_KEYS: ClassVar[frozenset] = frozenset()

    # ------------------------------------------------------------------------------------------- field dict
    @classmethod
    def _key(cls, name: str) -> str:
        return cls.KEYS.get(name, name)

    def to_dict(self) -> dict:
        """{key: value} of the fields (tuples as lists, nested artifacts as dicts), without the version."""
        return {self._key(f.name): _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        """The rule from its field dict; ``ValueError`` naming unknown keys. Missing keys take the defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object of fields, got {type(d).__name__}")
        by_key = {cls._key(f.name): f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(by_key) - {VERSION_KEY})
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(by_key)}")
        kwargs = {}
        for key, value in d.items():
            if key == VERSION_KEY:
                continue
            f = by_key[key]
            default = _default(f)
            if isinstance(default, FittedArtifact) and isinstance(value, dict):
                value = type(default).from_dict(value)
            elif isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------------- file layout
    def to_file_dict(self, record: dict | None = None) -> dict:
        """What :meth:`save` writes: the fields (top level or under ``NEST``), ``schema_version`` and ``record``."""
        record = dict(record or {})
        body = self.to_dict()
        clash = sorted(set(record) & ({VERSION_KEY} | ({self.NEST} if self.NEST else set(body))))
        if clash:
            raise ValueError(f"{type(self).__name__}: record keys {clash} would overwrite the rule's own keys")
        if self.NEST:
            return {self.NEST: body, VERSION_KEY: SCHEMA_VERSION, **record}
        return {**body, VERSION_KEY: SCHEMA_VERSION, **record}

    @classmethod
    def split_file_dict(cls, d: dict) -> tuple[dict, dict]:
        """(field dict, record) of a file's content; ``ValueError`` for a newer schema or unknown top-level keys."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        version = d.get(VERSION_KEY, 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"{VERSION_KEY} {version!r} is newer than this code reads ({SCHEMA_VERSION}); "
                             f"update nnunet_thrombus")
        if cls.NEST:
            if cls.NEST not in d:
                raise ValueError(f"no {cls.NEST!r} object (keys: {sorted(d)})")
            return d[cls.NEST], {k: v for k, v in d.items() if k not in (cls.NEST, VERSION_KEY)}
        field_keys = {cls._key(f.name) for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - field_keys - set(cls.RECORD_KEYS) - {VERSION_KEY})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; known: {sorted(field_keys | set(cls.RECORD_KEYS))}")
        return ({k: v for k, v in d.items() if k in field_keys},
                {k: v for k, v in d.items() if k in cls.RECORD_KEYS})

    @classmethod
    def from_file_dict(cls, d: dict):
        return cls.from_dict(cls.split_file_dict(d)[0])

    def save(self, path, record: dict | None = None) -> Path:
        """Write the file atomically (temp file in the same folder, then rename); ``record``: the fit's record."""
        return write_json(path, self.to_file_dict(record))

    @classmethod
    def load(cls, path):
        """The rule in ``path``; :class:`CalibrationFileError` naming the file when it is not valid."""
        path = Path(path)
        try:
            return cls.from_file_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as exc:
            raise CalibrationFileError(f"{path} is not a valid {cls.__name__} file ({exc})") from exc

    @classmethod
    def load_record(cls, path) -> dict:
        """The fit's record stored beside the rule in ``path`` ({} when it has none)."""
        return cls.split_file_dict(json.loads(Path(path).read_text()))[1]
