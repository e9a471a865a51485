"""instrumentation layer; see the layer table in the README."""
