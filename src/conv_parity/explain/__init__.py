"""What happens after a verdict: say what a failure looks like and how to reproduce it.

* :mod:`.diagnosis` -- which wrong interpretation (other padding side, swapped axes, missing
  bias, ...) a backend's failing output matches;
* :mod:`.gradient_diagnosis` -- the same for a wrong gradient (scaled, transposed, ...);
* :mod:`.errormap` -- where the outputs differ, reduced to a small picture;
* :mod:`.repro` -- a standalone script (plain Keras + NumPy) per failing case x backend.

Pure rules over a case, its arrays and the expected answer: no processes, no pytest.
"""
