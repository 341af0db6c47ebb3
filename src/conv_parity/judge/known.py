"""What a matching registry entry does to an outcome: the known-discrepancy rules.

Pure rules (DESIGN.md, judge/): the engine finds the entry; this decides what it means. An entry
that explains the observed verdict turns it into ``xfail`` (``unsupported`` when the entry says the
limitation is Keras-wide); a nondeterministic entry's pass is a noted pass; any other entry whose
case now passes is stale (a defect under a strict registry, a conforming case otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conv_parity.judge.verdict import Outcome
    from conv_parity.registry.entries import Entry


def apply_entry(out: Outcome, entry: Entry, keras_version: str | None, *,
                strict: bool) -> None:
    """Mark ``out`` with ``entry`` (the registry's match for it) and set its verdict and message."""
    out.known = entry.to_json()
    hint = f"; {entry.upgrade_hint()}" if entry.fixed_in else ""
    if entry.explains(out.verdict):
        out.observed_verdict = out.verdict
        if entry.keras_wide:
            out.verdict = "unsupported"
            out.message = (f"a Keras-wide limitation (known discrepancy {entry.id}, "
                           f"{entry.link}{hint}): {out.message}")
        else:
            out.verdict = "xfail"
            out.message = f"known discrepancy {entry.id} ({entry.link}{hint}): {out.message}"
    elif out.verdict == "pass" and entry.nondeterministic:
        out.known["shown"] = False
        out.message = (f"known nondeterministic discrepancy {entry.id} did not show on this "
                       f"call ({entry.link}): this call conforms")
    elif out.verdict == "pass":
        out.known.update(stale=True, strict=strict)
        if strict:
            out.message = (
                f"known discrepancy {entry.id} no longer reproduces on Keras "
                f"{keras_version}: the entry is stale, narrow or delete it in "
                f"known_discrepancies.toml ({entry.link})")
        else:
            out.message = (
                f"known discrepancy {entry.id} did not reproduce here (Keras "
                f"{keras_version}): this backend conforms on the case ({entry.link})")
    else:
        out.message += f" (known discrepancy {entry.id} expects {entry.verdict} instead)"


def stale_but_seeded_reproduces(out: Outcome, seeded: Outcome | None) -> bool:
    """The rule for a model's layer: an entry that did not reproduce on the layer's real
    weights (``out`` stale) is stale only if it does not reproduce on seeded ones either
    (``seeded``: the same case on seeded arrays). Real weights can hide a real bug: a bias
    still at Keras's zero initialisation hides a bias-on-the-wrong-axis one. Where the seeded
    run reproduces it, ``out`` becomes a pass that says so (and True is returned)."""
    if not (out.known and out.known.get("stale")) or seeded is None \
            or seeded.verdict != "xfail":
        return False
    out.known = {**out.known, "stale": False, "hidden_by_weights": True}
    out.message = (f"known discrepancy {out.known.get('id')} does not show with this layer's "
                   f"own weights (a zero bias hides a bias bug) but reproduces with seeded "
                   f"non-zero weights: it is real here, and these weights are unaffected")
    return True
