"""Known upstream discrepancies, as data (``known_discrepancies.toml`` beside this module).

Each entry scopes one confirmed Keras/backend bug: a Keras version specifier, the backends, the
layers, a predicate on the case, dtype/mode scope, the verdict it produces, and an upstream link.
The engine turns a matching outcome into ``xfail``; a matching case that now *passes* fails the
run (strict: delete the entry), and an entry that matches no collected case is warned about.
``python -m conv_parity.registry --write docs/known-discrepancies.md`` regenerates the table.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from conv_parity import BACKENDS, kinds
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PATH = Path(__file__).with_name("known_discrepancies.toml")
VERDICTS = (
    "pass", "fail-shape", "fail-values", "fail-symbolic-shape", "fail-error-parity",
    "crash", "timeout", "unsupported", "skip", "xfail",
)
FAILING_VERDICTS = (
    "fail-shape", "fail-values", "fail-symbolic-shape", "fail-error-parity", "crash", "timeout",
)


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """TF-style "same" padding of one axis: (before, after), the extra one after."""
    if s <= 0:  # the spec rejects it; no padding is defined
        return 0, 0
    from conv_parity.reference._geometry import same_padding

    return same_padding(n, k, s)


def _edge_replication_visible(case: ConvCase) -> bool:
    """A same-padded pooling whose padding is asymmetric on some axis, and where copying edge
    values into the padding (instead of leaving it out) changes an average: a border window
    holds padding and at least two real elements. Symmetric padding needs no explicit pad."""
    kw = case.kwargs
    if kw.get("padding") != "same" or "pool_size" not in kw:
        return False
    window = kw["pool_size"]
    strides = kw.get("strides") or window
    pads = [_same_pads(n, k, s) for n, k, s in zip(case.spatial_shape, window, strides)]
    if all(before == after for before, after in pads):
        return False
    return any(
        (pad > 0 and min(k - pad, n) >= 2)
        for (before, after), k, n in zip(pads, window, case.spatial_shape)
        for pad in (before, after)
    )


def _same_pad_deficit(case: ConvCase) -> int:
    """The most negative raw "same" padding ``(ceil(n/s)-1)*s + k - n`` over the axes: how many
    trailing input positions a "same" window grid leaves uncovered (0 when none)."""
    kw = case.kwargs
    window = kw.get("kernel_size") or kw.get("pool_size") or ()
    strides = kw.get("strides") or window
    raws = [(-(-n // s) - 1) * s + k - n
            for n, k, s in zip(case.spatial_shape, window, strides) if s > 0]
    return max(0, -min(raws, default=0))


def _spec_output(case: ConvCase) -> tuple[tuple[int, ...] | None, bool]:
    """(the reference's output shape or None, whether the spec rejects an empty output)."""
    from conv_parity.errors import InvalidConfig
    from conv_parity.reference import output_shape

    try:
        return tuple(output_shape(case.layer, case.input_shape, **case.kwargs)), False
    except InvalidConfig as exc:
        return None, str(exc).startswith("output size would be 0 ")


@functools.lru_cache(maxsize=4096)
def _derived(case: ConvCase) -> dict[str, Any]:
    """Case attributes a predicate may name besides the kwargs themselves (cached: every entry
    asks for them, and they include the reference's shape rule). Callers must not mutate it."""
    kw = case.kwargs
    window = kw.get("kernel_size") or kw.get("pool_size") or (1,)
    strides = kw.get("strides") or window
    spatial = case.spatial_shape
    op = kw.get("output_padding")
    out_shape, empty = _spec_output(case)
    out_spatial: tuple[int, ...] = ()
    out_channels = 0
    if out_shape is not None:
        first = kw.get("data_format") == "channels_first"
        out_spatial = out_shape[2:] if first else out_shape[1:-1]
        out_channels = out_shape[1] if first else out_shape[-1]
    same_pads = [_same_pads(n, k, s) for n, k, s in zip(spatial, window, strides)]
    return {
        "batch": case.input_shape[0],
        "channels": kinds.channels(kw, case.input_shape),
        "rank": len(case.input_shape) - 2,
        "any_stride_gt_1": max(strides) > 1,
        "unequal_strides": len(set(strides)) > 1,
        "strides_none": kw.get("strides", 0) is None,
        "any_dilation_gt_1": max(kw.get("dilation_rate") or (1,)) > 1,
        "strides_and_dilation": max(strides) > 1 and max(kw.get("dilation_rate") or (1,)) > 1,
        # the conv *layers* refuse this pair in their constructors, on every backend
        "layer_with_strides_and_dilation": not case.layer.startswith("ops.")
        and max(strides) > 1 and max(kw.get("dilation_rate") or (1,)) > 1,
        "same_pad_deficit": _same_pad_deficit(case) if kw.get("padding") == "same" else 0,
        "has_output_padding": op is not None,
        "output_padding_ge_strides": op is not None
        and any(p >= s for p, s in zip(op, strides)),
        "output_padding_has_zero": op is not None and 0 in op,
        "even_kernel_zero_output_padding": op is not None
        and any(k % 2 == 0 and p == 0 for k, p in zip(window, op)),
        "window_larger_than_input": any(k > n for k, n in zip(window, spatial)),
        "zero_size_window": 0 in window,
        "out_channels_equal_last_spatial": out_channels > 1
        and bool(out_spatial) and out_spatial[-1] == out_channels,
        "spec_empty_output": empty,
        "spec_valid": out_shape is not None,
        "same_symmetric_window_gt_input": kw.get("padding") == "same"
        and all(b == a for b, a in same_pads)
        and any(k > n for k, n in zip(window, spatial)),
        "edge_replication_visible": _edge_replication_visible(case),
    }


def _matches_condition(actual: Any, expected: Any) -> bool:
    if isinstance(actual, tuple):
        actual = list(actual)
    if isinstance(expected, dict):  # {"gt": n} / {"lt": n} / {"ne": v}
        ops = {"gt": lambda a, b: a > b, "lt": lambda a, b: a < b, "ne": lambda a, b: a != b,
               "ge": lambda a, b: a >= b, "le": lambda a, b: a <= b}
        return all(ops[op](actual, v) for op, v in expected.items())
    if isinstance(expected, list) and not isinstance(actual, list):
        return actual in expected
    return actual == expected


def old_output_padding_api(keras_version: str | None) -> bool:
    """Whether this Keras predates 3.11's rework of the transposed layers' ``output_padding``.

    Before 3.11 the layers had no ``output_padding`` parameter (it went through ``**kwargs``,
    keyword only) and validated it without allowing 0 ('... that do not satisfy value > 0'),
    although 0 is the common valid value; 3.11 made it the fifth parameter (sixth for
    Conv3DTranspose) with ``allow_zero=True``. Read from the 3.1.0-3.10.0 and 3.11.0 wheels.
    """
    return keras_version is not None and Version(keras_version) < Version("3.11.0.dev0")


def refused_by_keras(case: ConvCase, keras_version: str | None) -> bool:
    """Whether this Keras's own constructor refuses the case on every backend, so that no
    backend failure can be observed on it (the suite's verdict is a Keras-wide 'unsupported'):
    a transposed layer's ``output_padding`` holding a 0 before 3.11
    (:func:`old_output_padding_api`). Entries describe backend bugs on cases Keras accepts,
    so they skip these.
    """
    op = case.kwargs.get("output_padding")
    pads = op if isinstance(op, (tuple, list)) else (op,)
    return (
        op is not None and 0 in pads and not case.layer.startswith("ops.")
        and old_output_padding_api(keras_version)
    )


@dataclass(frozen=True)
class Entry:
    """One known discrepancy."""

    id: str
    keras: SpecifierSet
    backends: tuple[str, ...]
    layers: tuple[str, ...]
    verdict: str
    link: str
    note: str
    where: Mapping[str, Any] = field(default_factory=dict)
    dtypes: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    repro: str = ""
    requires: Mapping[str, SpecifierSet] = field(default_factory=dict)  # library -> versions

    def possible_here(self, keras_version: str | None) -> bool:
        """Whether this Keras (and the libraries installed here) are ones the entry is about."""
        if keras_version is not None and Version(keras_version) not in self.keras:
            return False
        for library, spec in self.requires.items():
            installed = _library_version(library)
            if installed is None or Version(installed) not in spec:
                return False
        return True

    def applies(self, case: ConvCase, backend: str, keras_version: str | None) -> bool:
        if backend not in self.backends or case.layer not in self.layers:
            return False
        if refused_by_keras(case, keras_version):
            return False
        if self.dtypes and case.dtype not in self.dtypes:
            return False
        if self.modes and case.mode not in self.modes:
            return False
        if not self.possible_here(keras_version):
            return False
        attrs = {**case.kwargs, **_derived(case)}
        return all(
            key in attrs and _matches_condition(attrs[key], value)
            for key, value in self.where.items()
        )

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "link": self.link, "note": self.note, "verdict": self.verdict,
                "keras": str(self.keras),
                "requires": {lib: str(v) for lib, v in self.requires.items()}}


_VERSIONS: dict[str, str | None] = {}


def _library_version(name: str) -> str | None:
    """An installed distribution's version (the workers run in this same environment)."""
    from importlib import metadata

    if name not in _VERSIONS:
        try:
            _VERSIONS[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            _VERSIONS[name] = None
    return _VERSIONS[name]


def _parse_entry(raw: Mapping[str, Any], source: str) -> Entry:
    def need(key: str) -> Any:
        if key not in raw:
            raise UsageError(f"{source}: entry {raw.get('id', '?')!r} lacks {key!r}")
        return raw[key]

    eid = need("id")
    try:
        spec = SpecifierSet(need("keras"))
    except InvalidSpecifier:
        raise UsageError(f"{source}: entry {eid!r}: bad keras specifier {raw['keras']!r}") from None
    backends = tuple(need("backends"))
    for b in backends:
        if b not in BACKENDS:
            raise UsageError(f"{source}: entry {eid!r}: unknown backend {b!r}")
    layers = tuple(need("layers"))
    for name in layers:
        kinds.get_kind(name)
    verdict = need("verdict")
    if verdict not in FAILING_VERDICTS:
        raise UsageError(f"{source}: entry {eid!r}: verdict must be one of {FAILING_VERDICTS}")
    try:
        requires = {lib: SpecifierSet(v) for lib, v in dict(raw.get("requires", {})).items()}
    except InvalidSpecifier:
        raise UsageError(f"{source}: entry {eid!r}: bad version specifier in requires") from None
    return Entry(
        id=eid, keras=spec, backends=backends, layers=layers, verdict=verdict, requires=requires,
        link=need("link"), note=need("note"), where=dict(raw.get("where", {})),
        dtypes=tuple(raw.get("dtypes", ())), modes=tuple(raw.get("modes", ())),
        repro=raw.get("repro", ""),
    )


class Registry:
    """The loaded entries, and which ones matched a collected case (for the stale warning)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = list(entries)
        ids = [e.id for e in self.entries]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise UsageError(f"known discrepancies: duplicate ids {dupes}")
        self.used: set[str] = set()

    @classmethod
    def load(cls, path: Path | str | None = None) -> Registry:
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read known discrepancies {path}: {exc}") from None
        return cls(_parse_entry(raw, str(path)) for raw in data.get("discrepancy", []))

    def match(self, case: ConvCase, backend: str, keras_version: str | None) -> Entry | None:
        for entry in self.entries:
            if entry.applies(case, backend, keras_version):
                self.used.add(entry.id)
                return entry
        return None

    def unused(
        self, keras_version: str | None = None, backends: Sequence[str] | None = None
    ) -> list[Entry]:
        """Entries no case matched, among those that could match with ``keras_version`` (and
        the libraries installed here) on ``backends`` (default: any): an entry about another
        Keras release, or only about backends not run, is not stale."""
        return [e for e in self.entries
                if e.id not in self.used and e.possible_here(keras_version)
                and (backends is None or set(e.backends) & set(backends))]

    def to_markdown(self) -> str:
        lines = [
            "# Known discrepancies",
            "",
            "Generated from `src/conv_parity/known_discrepancies.toml` by "
            "`python -m conv_parity.registry --write docs/known-discrepancies.md`; do not edit.",
            "",
        ]
        if not self.entries:
            lines.append("No known discrepancies are registered.")
            return "\n".join(lines) + "\n"
        lines += [
            "| id | Keras | backends | layers | when | verdict | upstream | note |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in self.entries:
            when = ", ".join(f"{k}={v}" for k, v in e.where.items()) or "always"
            if e.requires:
                when += "; " + ", ".join(f"{lib} {v}" for lib, v in e.requires.items())
            if e.dtypes:
                when += f"; dtype in {list(e.dtypes)}"
            cells = [e.id, f"`{e.keras}`", ", ".join(e.backends), ", ".join(e.layers), when,
                     e.verdict, e.link, e.note.replace("\n", " ").replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def installed_keras_version() -> str | None:
    """The installed Keras version without importing Keras (keras or keras-nightly)."""
    from importlib import metadata

    for dist in ("keras", "keras-nightly"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conv_parity.registry", description=__doc__)
    parser.add_argument("--write", metavar="PATH", help="write the Markdown table to PATH")
    parser.add_argument("--check", metavar="PATH", help="exit 1 if PATH is not up to date")
    args = parser.parse_args(argv)
    text = Registry.load().to_markdown()
    if args.check:
        current = Path(args.check).read_text() if Path(args.check).exists() else ""
        if current != text:
            print(f"{args.check} is stale: run python -m conv_parity.registry --write {args.check}",
                  file=sys.stderr)
            return 1
        return 0
    if args.write:
        Path(args.write).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
