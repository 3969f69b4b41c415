"""The sync engine: plan (pure) and apply (I/O) per item, both directions."""
