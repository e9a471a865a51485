"""Processing stages that run off the caller's thread: cost, later masking and sealing."""
