"""Demo helpers: a deterministic fake OpenAI-compatible server for demos and tests."""
