"""Operations: incidents and failure notices, dead-letter handling, health summaries, telemetry."""
