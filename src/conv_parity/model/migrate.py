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
                            for b in self.blockers if b.repair]}


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
    for b in blockers:
        say(f"conv-parity: migration blocker: layer {b.layer!r} ({b.cls}): Keras "
            f"{keras.__version__} rejects {b.key}: {b.message[:200]}")
    unrepaired = [b for b in blockers if not b.repair]
    if not blockers or unrepaired:
        what = "; ".join(f"{b.layer} ({b.cls}) {b.key}={b.value!r}" for b in unrepaired)
        raise UsageError(f"{path}: Keras {keras.__version__} cannot load this Keras "
                         f"{version or '?'} model"
                         + (f" and no known repair covers: {what}" if what else f": {first}"))
    for b in blockers:
        say(f"conv-parity: repair: drop {b.key} from layer {b.layer!r} ({b.cls}): {b.repair}")
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
