"""Tools around the pipeline, not stages of it: the ``wirewatch`` entry point, the embedded
broker launcher, ``wirewatch run`` with tail and topics, the demo feed, generic replay and
export. They may import ``services``; nothing in ``services`` imports them."""
