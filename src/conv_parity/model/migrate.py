"""Keras 2 (tf_keras) full-model ``.h5`` -> Keras 3: what blocks, and the known repairs.

Keras 3 refuses a Keras 2 model holding a Conv*Transpose, DepthwiseConv* or SeparableConv*
layer: Keras 2's base class writes ``groups`` into every conv config, and Keras 3's layers
that have no grouping reject it ("Unrecognized keyword arguments passed to DepthwiseConv2D:
{'groups': 1}", keras#19441, keras#19151); separable convs also carry Keras 2's
``kernel_initializer`` / ``kernel_regularizer`` / ``kernel_constraint``.

The migration first tries the file as it is. Each config key Keras 3 rejects is a *blocker*
(layer, key, Keras's message): a user must know their file does not load. Then the
:data:`REPAIRS` are applied, each reported, to a copy of the file (the original is never
written), and the check goes on with the repaired model, so the user learns both what blocks
and whether the numbers agree once repaired. A rejected key no repair covers (``groups=2`` on a
depthwise conv, which changes the computation) stays a blocker and the model is not loaded.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conv_parity.errors import UsageError
from conv_parity.model.files import h5_model_config, import_keras, layer_configs

_CONTAINERS = frozenset({"Sequential", "Functional", "Model"})


@dataclass(frozen=True)
class Repair:
    """One documented repair: drop ``key`` from layers whose class ``applies`` to, when its
    value ``safe`` says dropping it leaves the computation unchanged."""

    key: str
    applies: Callable[[str], bool]
    safe: Callable[[Any], bool]
    why: str


def _transposed_depthwise_separable(cls: str) -> bool:
    return cls.endswith("Transpose") or cls.startswith(("DepthwiseConv", "SeparableConv"))


#: The known repairs, in the order they are tried (README: "Migration").
REPAIRS: tuple[Repair, ...] = (
    Repair("groups", _transposed_depthwise_separable, lambda v: v in (1, None),
           "Keras 2 writes groups=1 into every conv config; Keras 3's transposed, depthwise "
           "and separable convs have no groups argument (keras#19441, keras#19151)"),
    *(Repair(key, lambda c: c.startswith("SeparableConv"), lambda v: True,
             f"Keras 2's separable convs inherit {key} from Conv and ignore it (they use the "
             f"depthwise_ and pointwise_ ones); Keras 3 rejects it")
      for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint")),
)


@dataclass
class Blocker:
    layer: str
    cls: str
    key: str
    value: Any
    message: str
    repair: str | None = None  # the repair's reason when one applies


@dataclass(frozen=True)
class BlockerGroup:
    """The blockers that share a key, a value and a fate: a Keras 2 Xception has 34 separable
    convs, each blocked by the same four keys; a person needs four lines, not 136."""

    key: str
    value: Any
    repair: str | None
    layers: tuple[tuple[str, str], ...]  # (layer, class) in the file's order

    def line(self, examples: int = 3, outcome: bool = True) -> str:
        """"groups=1 dropped from 40 layers (DepthwiseConv2D ×20, SeparableConv2D ×20:
        'dw1', 'dw2', 'sep1', ...)" or "groups=2 in 1 layer (DepthwiseConv2D: 'dw'): no known
        repair"; without the ``outcome``: "groups=1 in 40 layers (...)"."""
        classes: dict[str, int] = {}
        for _, cls in self.layers:
            classes[cls] = classes.get(cls, 0) + 1
        count = len(self.layers)
        names = ", ".join(repr(name) for name, _ in self.layers[:examples])
        more = ", ..." if count > examples else ""
        which = ", ".join(f"{c} ×{n}" if count > 1 else c for c, n in classes.items())
        what = f"{self.key}={_short(self.value)}"
        layers = f"{count} layer{'s' if count > 1 else ''} ({which}: {names}{more})"
        if not outcome:
            return f"{what} in {layers}"
        return (f"{what} dropped from {layers}" if self.repair
                else f"{what} in {layers}: no known repair")


def _short(value: Any) -> str:
    """A value for one line: a serialized object by its class ("GlorotUniform")."""
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        return value["class_name"]
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def group_blockers(blockers: list[Blocker]) -> list[BlockerGroup]:
    """The blockers grouped by (key, value, repair), in order of first appearance."""
    groups: dict[tuple[str, str, str | None], list[Blocker]] = {}
    for b in blockers:
        groups.setdefault((b.key, repr(b.value), b.repair), []).append(b)
    return [BlockerGroup(members[0].key, members[0].value, members[0].repair,
                         tuple((b.layer, b.cls) for b in members))
            for members in groups.values()]


@dataclass
class Migration:
    """The ``migration`` part of the model section."""

    keras_version: str | None
    loads_as_is: bool
    blockers: list[Blocker] = field(default_factory=list)
    repaired_path: str | None = None

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    def to_json(self) -> dict[str, Any]:
        return {"keras_version": self.keras_version, "loads_as_is": self.loads_as_is,
                "blocked": self.blocked,
                "blockers": [{**asdict(b), "value": _plain(b.value)} for b in self.blockers],
                "repairs": [{"layer": b.layer, "class": b.cls, "key": b.key, "why": b.repair}
                            for b in self.blockers if b.repair],
                "groups": [{"key": g.key, "value": _plain(g.value), "repair": g.repair,
                            "layers": [name for name, _ in g.layers], "line": g.line()}
                           for g in group_blockers(self.blockers)]}


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def saved_keras_version(path: Path) -> str | None:
    """The ``keras_version`` attribute a full-model .h5 was written with (None if absent)."""
    import h5py

    with h5py.File(path, "r") as fh:
        v = fh.attrs.get("keras_version")
    return v.decode() if isinstance(v, bytes) else (None if v is None else str(v))


_UNRECOGNIZED = re.compile(r"Unrecognized keyword arguments passed to \w+: (\{.*\})", re.S)


def _build_as_the_h5_loader_does(cls: Any, record: dict[str, Any]) -> Any:
    """One layer from its Keras 2 record, through the deserializer Keras 3's .h5 loader uses
    (``keras.src.legacy.saving.saving_utils.model_from_config``): it adapts Keras 2 configs
    (a one-element ``axis`` list becomes an int, ``batch_input_shape`` is dropped), so
    ``cls.from_config`` alone would call BatchNormalization's ``axis: [3]`` a blocker that the
    loader accepts. Private API, so ``cls.from_config`` where it is gone."""
    import copy

    try:
        from keras.src.legacy.saving.saving_utils import model_from_config
    except ImportError:
        return cls.from_config(dict(record["config"]))
    return model_from_config(copy.deepcopy(record))


def find_blockers(config: Any) -> list[Blocker]:
    """Every (layer, key) of a model config that Keras 3 refuses, found by building each layer
    from its own config; the repair that covers it, if one does."""
    keras = import_keras()
    found: list[Blocker] = []
    for record in layer_configs(config):
        cls_name = record["class_name"]
        cls = getattr(keras.layers, cls_name, None)
        if cls_name in _CONTAINERS or cls is None:
            continue
        name = str(record["config"].get("name", "?"))
        try:
            _build_as_the_h5_loader_does(cls, record)
            continue
        except Exception as exc:
            message = " ".join(str(exc).split())
        match = _UNRECOGNIZED.search(message)
        try:
            keys = ast.literal_eval(match.group(1)) if match else {}
        except (ValueError, SyntaxError):
            keys = {}
        if match:
            message = match.group(0)  # Keras prefixes it with the whole config
        if not keys:
            found.append(Blocker(name, cls_name, "?", None, message[:400]))
            continue
        for key, value in keys.items():
            repair = next((r.why for r in REPAIRS
                           if r.key == key and r.applies(cls_name) and r.safe(value)), None)
            found.append(Blocker(name, cls_name, key, value, message[:400], repair))
    return found


def _repaired_config(config: Any, blockers: list[Blocker]) -> Any:
    drop = {(b.layer, b.key) for b in blockers if b.repair}
    config = json.loads(json.dumps(config))
    for record in layer_configs(config):
        name = record["config"].get("name")
        for key in [k for k in record["config"] if (name, k) in drop]:
            del record["config"][key]
    return config


def migrate_h5(path: Path, say: Callable[[str], None]) -> tuple[Any, Migration]:
    """(the Keras 3 model, what migrating it took) for a full-model .h5 written by Keras 2.

    UsageError when a blocker has no repair or the repaired file still does not load.
    """
    keras = import_keras()
    version = saved_keras_version(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        return model, Migration(version, loads_as_is=True)
    except Exception as exc:
        first = " ".join(str(exc).split())[:400]
    config = h5_model_config(path)
    blockers = find_blockers(config)
    migration = Migration(version, loads_as_is=False, blockers=blockers)
    groups = group_blockers(blockers)
    for g in groups:
        say(f"conv-parity: migration blocker: Keras {keras.__version__} rejects "
            f"{g.line(outcome=False)}")
    unrepaired = [b for b in blockers if not b.repair]
    if not blockers or unrepaired:
        what = "; ".join(f"{b.layer} ({b.cls}) {b.key}={b.value!r}" for b in unrepaired)
        raise UsageError(f"{path}: Keras {keras.__version__} cannot load this Keras "
                         f"{version or '?'} model"
                         + (f" and no known repair covers: {what}" if what else f": {first}"))
    for g in groups:
        say(f"conv-parity: repair: {g.line()}: {g.repair}")
    tmp = Path(tempfile.mkdtemp(prefix="conv-parity-migrate-")) / path.name
    shutil.copyfile(path, tmp)
    import h5py

    with h5py.File(tmp, "r+") as fh:
        fh.attrs["model_config"] = json.dumps(_repaired_config(config, blockers))
    try:
        model = keras.saving.load_model(tmp, safe_mode=True, compile=False)
    except Exception as exc:
        raise UsageError(f"{path}: still does not load after the known repairs: "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from None
    migration.repaired_path = str(tmp)
    return model, migration
