"""Check a whole model: every conv-family layer with its real config, shape and weights.

A client of the engine (DESIGN.md, "model"); nothing in the engine, the workers or the reports
imports it. Public API:

- :func:`check_model` (also ``conv_parity.check_model``): a model object or a SOURCE
  (``.keras``, full-model ``.h5``, ``.weights.h5`` with a builder,
  ``keras.applications.NAME``) -> :class:`ModelResult`,
  whose ``to_json()`` is the report.json document ``conv-parity model --json`` prints. Its
  options are keywords, or one :class:`ModelCheckOptions`.
- :func:`assert_model_conforms`: the same as one assertion for users' own pytest suites.

Private modules: ``load`` (SOURCE -> model, safely; seeded weights), ``extract`` (layers ->
cases), ``check`` (the engine round trip and the result).
"""

from __future__ import annotations

from conv_parity.model.check import (
    ModelCheckOptions,
    ModelResult,
    assert_model_conforms,
    check_model,
)

__all__ = ["ModelCheckOptions", "ModelResult", "assert_model_conforms", "check_model"]
