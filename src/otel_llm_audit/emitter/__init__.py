"""emitter layer; see the layer table in the README."""
