"""The judge: pure rules that turn a backend's result into a verdict.

``compare`` (tolerance and value comparison), ``verdict`` (classify one result against the
reference), ``known`` (what a matching registry entry does), ``repeat`` (two identical calls).
No processes, no workers, no pytest (DESIGN.md, the layered tree).
"""
