"""The report.json schema (version 1): validation, summary, and the JSON-safe float encoding.

Other tools (CI merge jobs, dashboards, the CLI) read report.json, so its field names and
meanings are a contract: :func:`validate` checks a document against it and names the first bad
field, so a producer bug shows up where it is made rather than in a consumer.

Non-finite floats. JSON has no NaN or infinity, and a conformance report must be able to say
"the backend returned NaN". Every float in the document that is NaN, +inf or -inf is written as
the *string* ``"nan"``, ``"inf"`` or ``"-inf"`` (:func:`encode`; the file is strict JSON,
``allow_nan=False``). :func:`decode` turns those strings back into floats, but only in the
fields that hold floats (``max_abs_err``, ``tolerance``, ``seconds``, ``worst.value``,
``worst.reference``, ``worst.tolerance``, ``error_map.values``, ``error_map.vmax``), so a message
that happens to read "nan" stays a string.

Fields beyond the contract (consumers may use them; they are not required by :func:`validate`):
``summary.matrix`` (layer -> backend -> verdict -> count, non-zero only);
``environment.conflicts`` (after a merge: each environment key whose value differed between
inputs, with every value seen); ``run.merged`` / ``run.sources`` (after a merge: the inputs'
run objects); ``error_map.spatial_shape`` / ``block`` / ``nonfinite`` (see
:func:`conv_parity.report.error_map`); ``fuzz`` (when fuzzing ran: ``filtered_known``, the drawn
examples skipped because they match a known discrepancy, and ``tests`` in a pytest run, or the
campaign's statistics from ``conv-parity fuzz``; after a merge, the sum and ``sources``).
``phases`` (``conv-parity model``: the run's phases in order, each ``name``, ``seconds`` and
``peak_rss_mb``; see :mod:`conv_parity.phases`).
``summary.by_verdict`` and each ``by_backend`` entry list every verdict, zeros included.
report.json puts one result per line.

Classes. ``by_verdict``, ``by_backend`` and ``matrix`` count the ``verdict`` field as written:
a stale registry entry has verdict ``pass`` there even where it fails the run. What a result
*is* (whether it fails the run, is a known discrepancy, ...) is its bucket, given by the one
classifier :func:`conv_parity.report.matrix.bucket` (``conforms``, ``known-wrong``,
``known-cannot-run``, ``unsupported``, ``new``, ``not-reproduced``, ``skip``), and every
rendering (pytest's outcome, the terminal matrix, report.md, report.html, exit codes) counts
those. The summary holds them too (added after conv-parity 0.1.0, schema version still 1, so a
consumer must accept their absence in older reports): ``summary.by_bucket`` (bucket -> count,
every bucket, zeros included), ``summary.by_backend_bucket`` (backend -> bucket -> count, every
bucket) and ``report.matrix.bucket_matrix`` (layer -> backend -> bucket -> count, non-zero only).
``summary.by_bucket.new`` is the number of results that fail the run (a failure verdict, or a
stale entry under a strict registry); the failure verdicts' sum in ``by_verdict`` leaves the
stale entries out.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

# The vocabulary lives in conv_parity.vocabulary; re-exported here for the report API.
from conv_parity.report.matrix import BUCKETS, bucket
from conv_parity.vocabulary import FAILURE_VERDICTS as FAILURE_VERDICTS
from conv_parity.vocabulary import OK_VERDICTS as OK_VERDICTS
from conv_parity.vocabulary import VERDICTS as VERDICTS

SCHEMA_VERSION = 1

#: Optional result fields and their defaults: ReportWriter fills them so every result has them.
RESULT_DEFAULTS: dict[str, Any] = {
    "message": "",
    "shape": None,
    "symbolic_shape": None,
    "functional_shape": None,
    "reference_shape": None,
    "dtype": None,
    "max_abs_err": None,
    "tolerance": None,
    "mismatches": None,
    "worst": None,
    "error": None,
    "diagnosis": None,
    "repro": None,
    "known": None,
    "error_map": None,
    "stderr_tail": None,
    "seconds": None,
}
SHAPE_FIELDS = ("shape", "symbolic_shape", "functional_shape", "reference_shape")
FLOAT_FIELDS = ("max_abs_err", "tolerance", "seconds")
WORST_FLOAT_FIELDS = ("value", "reference", "tolerance")
ENV_BACKEND_FIELDS = (
    "available",
    "keras_version",
    "backend_version",
    "device",
    "fp_settings",
    "import_error",
)

_NONFINITE_STR = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# --------------------------------------------------------------------------- encoding


def _encode_float(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types, with non-finite floats as strings; numpy values and tuples converted.

    Unknown objects become their ``repr`` rather than failing: a report that loses one exotic
    value is worth more than no report at the end of a long run.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return _encode_float(float(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    return repr(obj)


encode = to_jsonable


def _decode_float(x: Any) -> Any:
    if isinstance(x, str) and x in _NONFINITE_STR:
        return _NONFINITE_STR[x]
    return x


def decode_result(result: dict[str, Any]) -> dict[str, Any]:
    """Undo the non-finite float encoding in one result, in its float fields only (in place)."""
    for key in FLOAT_FIELDS:
        if key in result:
            result[key] = _decode_float(result[key])
    worst = result.get("worst")
    if isinstance(worst, dict):
        for key in WORST_FLOAT_FIELDS:
            if key in worst:
                worst[key] = _decode_float(worst[key])
    emap = result.get("error_map")
    if isinstance(emap, dict):
        if "vmax" in emap:
            emap["vmax"] = _decode_float(emap["vmax"])
        if isinstance(emap.get("values"), list):
            emap["values"] = [
                [_decode_float(v) for v in row] if isinstance(row, list) else row
                for row in emap["values"]
            ]
    return result


def decode(doc: dict[str, Any]) -> dict[str, Any]:
    """Undo :func:`encode` on a document read from disk (in place; returns it)."""
    for result in doc.get("results") or []:
        if isinstance(result, dict):
            decode_result(result)
    return doc


# --------------------------------------------------------------------------- summary


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by verdict, by backend and by layer x backend, and the same by bucket (the one
    classifier, :func:`conv_parity.report.matrix.bucket`): always recomputed, never merged."""
    by_verdict = dict.fromkeys(VERDICTS, 0)
    by_backend: dict[str, dict[str, int]] = {}
    matrix: dict[str, dict[str, dict[str, int]]] = {}
    by_bucket = dict.fromkeys(BUCKETS, 0)
    by_backend_bucket: dict[str, dict[str, int]] = {}
    bucket_matrix: dict[str, dict[str, dict[str, int]]] = {}
    total = 0
    for r in results:
        verdict, backend, layer = r["verdict"], r["backend"], r["layer"]
        kind = bucket(r)
        total += 1
        by_verdict[verdict] = by_verdict.get(verdict, 0) + 1
        per = by_backend.setdefault(backend, dict.fromkeys(VERDICTS, 0))
        per[verdict] = per.get(verdict, 0) + 1
        cell = matrix.setdefault(layer, {}).setdefault(backend, {})
        cell[verdict] = cell.get(verdict, 0) + 1
        by_bucket[kind] += 1
        by_backend_bucket.setdefault(backend, dict.fromkeys(BUCKETS, 0))[kind] += 1
        kinds = bucket_matrix.setdefault(layer, {}).setdefault(backend, {})
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "total": total,
        "by_verdict": by_verdict,
        "by_backend": dict(sorted(by_backend.items())),
        "matrix": {k: dict(sorted(v.items())) for k, v in sorted(matrix.items())},
        "by_bucket": by_bucket,
        "by_backend_bucket": dict(sorted(by_backend_bucket.items())),
        "bucket_matrix": {k: dict(sorted(v.items())) for k, v in sorted(bucket_matrix.items())},
    }


# --------------------------------------------------------------------------- validation


def _fail(field: str, problem: str) -> None:
    raise ValueError(f"report.json field {field}: {problem}")


def _is_num(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_float_or_encoded(x: Any) -> bool:
    return _is_num(x) or (isinstance(x, str) and x in _NONFINITE_STR)


def _check_type(field: str, value: Any, types: tuple[type, ...], nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if isinstance(value, bool) and bool not in types:
        _fail(field, f"expected {'/'.join(t.__name__ for t in types)}, got {value!r}")
    if not isinstance(value, types):
        names = "/".join(t.__name__ for t in types) + (" or null" if nullable else "")
        _fail(field, f"expected {names}, got {type(value).__name__} {value!r:.80}")


def _check_shape(field: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or not all(
        d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool)) for d in value
    ):
        _fail(field, f"expected a list of ints (or null entries) or null, got {value!r:.80}")


def validate_result(r: Any, where: str = "result") -> None:
    """Check one case x backend result; ValueError naming the bad field."""
    if not isinstance(r, Mapping):
        _fail(where, f"expected an object, got {type(r).__name__}")
    for key in ("case_id", "case", "layer", "backend", "verdict"):
        if key not in r:
            _fail(f"{where}.{key}", "missing")
    _check_type(f"{where}.case_id", r["case_id"], (str,))
    if not r["case_id"]:
        _fail(f"{where}.case_id", "empty")
    case = r["case"]
    _check_type(f"{where}.case", case, (Mapping,))
    for key in ("layer", "kwargs", "input_shape", "dtype", "seed"):
        if key not in case:
            _fail(f"{where}.case.{key}", "missing")
    _check_type(f"{where}.case.layer", case["layer"], (str,))
    _check_type(f"{where}.case.kwargs", case["kwargs"], (Mapping,))
    _check_shape(f"{where}.case.input_shape", case["input_shape"])
    if case["input_shape"] is None:
        _fail(f"{where}.case.input_shape", "missing (null)")
    _check_type(f"{where}.case.dtype", case["dtype"], (str,))
    _check_type(f"{where}.case.seed", case["seed"], (numbers.Integral,))
    if "mode" in case:
        _check_type(f"{where}.case.mode", case["mode"], (str,))
    _check_type(f"{where}.layer", r["layer"], (str,))
    if r["layer"] != case["layer"]:
        _fail(f"{where}.layer", f"{r['layer']!r} differs from case.layer {case['layer']!r}")
    _check_type(f"{where}.backend", r["backend"], (str,))
    if not r["backend"]:
        _fail(f"{where}.backend", "empty")
    if r["verdict"] not in VERDICTS:
        _fail(f"{where}.verdict", f"{r['verdict']!r} is not one of {', '.join(VERDICTS)}")
    if "message" in r:
        _check_type(f"{where}.message", r["message"], (str,))
    for key in SHAPE_FIELDS:
        _check_shape(f"{where}.{key}", r.get(key))
    for key in ("dtype", "diagnosis", "repro", "stderr_tail"):
        _check_type(f"{where}.{key}", r.get(key), (str,), nullable=True)
    for key in FLOAT_FIELDS:
        value = r.get(key)
        if value is not None and not _is_float_or_encoded(value):
            _fail(f"{where}.{key}", f"expected a float or null, got {value!r:.80}")
    _check_type(f"{where}.mismatches", r.get("mismatches"), (numbers.Integral,), nullable=True)
    worst = r.get("worst")
    if worst is not None:
        _check_type(f"{where}.worst", worst, (Mapping,))
        if "index" not in worst:
            _fail(f"{where}.worst.index", "missing")
        _check_shape(f"{where}.worst.index", worst["index"])
        _check_shape(f"{where}.worst.output_shape", worst.get("output_shape"))
        for key in WORST_FLOAT_FIELDS:
            value = worst.get(key)
            if value is not None and not _is_float_or_encoded(value):
                _fail(f"{where}.worst.{key}", f"expected a float or null, got {value!r:.80}")
    error = r.get("error")
    if error is not None:
        _check_type(f"{where}.error", error, (Mapping,))
        for key in ("type", "message"):
            if key not in error:
                _fail(f"{where}.error.{key}", "missing")
            _check_type(f"{where}.error.{key}", error[key], (str,))
        _check_type(f"{where}.error.phase", error.get("phase"), (str,), nullable=True)
    known = r.get("known")
    if known is not None:
        _check_type(f"{where}.known", known, (Mapping,))
        if "id" not in known:
            _fail(f"{where}.known.id", "missing")
        _check_type(f"{where}.known.id", known["id"], (str,))
        for key in ("link", "note"):
            _check_type(f"{where}.known.{key}", known.get(key), (str,), nullable=True)
    emap = r.get("error_map")
    if emap is not None:
        validate_error_map(emap, f"{where}.error_map")


def validate_error_map(emap: Any, where: str = "error_map") -> None:
    """rows x cols values, each a float (non-finite ones possibly encoded), and a vmax."""
    _check_type(where, emap, (Mapping,))
    for key in ("rows", "cols", "values", "vmax"):
        if key not in emap:
            _fail(f"{where}.{key}", "missing")
    _check_type(f"{where}.rows", emap["rows"], (numbers.Integral,))
    _check_type(f"{where}.cols", emap["cols"], (numbers.Integral,))
    if not _is_float_or_encoded(emap["vmax"]):
        _fail(f"{where}.vmax", f"expected a float, got {emap['vmax']!r:.80}")
    values = emap["values"]
    if not isinstance(values, list) or len(values) != emap["rows"]:
        _fail(f"{where}.values", f"expected {emap['rows']} rows")
    for i, row in enumerate(values):
        if not isinstance(row, list) or len(row) != emap["cols"]:
            _fail(f"{where}.values[{i}]", f"expected a list of {emap['cols']} floats")
        for j, v in enumerate(row):
            if not _is_float_or_encoded(v):
                _fail(f"{where}.values[{i}][{j}]", f"expected a float, got {v!r:.80}")


def validate(doc: Any) -> None:
    """Check a whole report document (decoded or as read from disk); ValueError naming the field.

    The summary must agree with the results: consumers read the summary without recounting.
    """
    if not isinstance(doc, Mapping):
        _fail("(document)", f"expected an object, got {type(doc).__name__}")
    for key in ("schema_version", "generated_at", "tool", "complete", "run", "environment",
                "summary", "results"):
        if key not in doc:
            _fail(key, "missing")
    if doc["schema_version"] != SCHEMA_VERSION:
        _fail("schema_version", f"{doc['schema_version']!r} is not supported "
                                f"(this conv-parity reads version {SCHEMA_VERSION})")
    _check_type("generated_at", doc["generated_at"], (str,))
    _check_type("tool", doc["tool"], (Mapping,))
    for key in ("name", "version"):
        if key not in doc["tool"]:
            _fail(f"tool.{key}", "missing")
        _check_type(f"tool.{key}", doc["tool"][key], (str,))
    _check_type("complete", doc["complete"], (bool,))
    _check_type("run", doc["run"], (Mapping,))
    env = doc["environment"]
    _check_type("environment", env, (Mapping,))
    for key in ("python", "platform", "keras", "numpy"):
        if key not in env:
            _fail(f"environment.{key}", "missing")
        _check_type(f"environment.{key}", env[key], (str,), nullable=True)
    if "backends" not in env:
        _fail("environment.backends", "missing")
    _check_type("environment.backends", env["backends"], (Mapping,))
    for name, info in env["backends"].items():
        _check_type(f"environment.backends.{name}", info, (Mapping,))
        if "available" not in info:
            _fail(f"environment.backends.{name}.available", "missing")
        _check_type(f"environment.backends.{name}.available", info["available"], (bool,))
        for key in ("keras_version", "backend_version", "device", "import_error"):
            _check_type(f"environment.backends.{name}.{key}", info.get(key), (str,),
                        nullable=True)
    if "fuzz" in doc:
        _check_type("fuzz", doc["fuzz"], (Mapping,))
        known = doc["fuzz"].get("filtered_known")
        if known is not None and (isinstance(known, bool) or not isinstance(known, int)
                                  or known < 0):
            _fail("fuzz.filtered_known", f"expected a count (int >= 0), got {known!r}")
    results = doc["results"]
    _check_type("results", results, (list,))
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(results):
        validate_result(r, f"results[{i}]")
        pair = (str(r["case_id"]), str(r["backend"]))
        if pair in seen:
            _fail(f"results[{i}]", f"duplicate result for case {pair[0]!r} on backend {pair[1]!r}")
        seen.add(pair)
    summary = doc["summary"]
    _check_type("summary", summary, (Mapping,))
    for key in ("total", "by_verdict", "by_backend"):
        if key not in summary:
            _fail(f"summary.{key}", "missing")
    expected = summarize(results)
    if summary["total"] != expected["total"]:
        _fail("summary.total", f"{summary['total']!r} but there are {expected['total']} results")
    for verdict, n in expected["by_verdict"].items():
        if summary["by_verdict"].get(verdict, 0) != n:
            _fail(f"summary.by_verdict.{verdict}",
                  f"{summary['by_verdict'].get(verdict, 0)!r} but the results have {n}")
    for backend, counts in expected["by_backend"].items():
        got = summary["by_backend"].get(backend)
        if not isinstance(got, Mapping):
            _fail(f"summary.by_backend.{backend}", "missing")
        for verdict, n in counts.items():
            if got.get(verdict, 0) != n:
                _fail(f"summary.by_backend.{backend}.{verdict}",
                      f"{got.get(verdict, 0)!r} but the results have {n}")
    if "by_bucket" in summary:  # absent in reports written before the buckets were added
        _check_type("summary.by_bucket", summary["by_bucket"], (Mapping,))
        for kind, n in expected["by_bucket"].items():
            if summary["by_bucket"].get(kind, 0) != n:
                _fail(f"summary.by_bucket.{kind}",
                      f"{summary['by_bucket'].get(kind, 0)!r} but the results have {n}")
