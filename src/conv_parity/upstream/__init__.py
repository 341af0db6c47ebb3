"""Closing the loop upstream: Keras releases side by side (:mod:`.releases`), the bisect over
them (:mod:`.bisect`), the registry change it implies (:mod:`.registry_edit`) and the
ready-to-file issue (:mod:`.draft`). A client of the engine, like :mod:`conv_parity.model`."""
