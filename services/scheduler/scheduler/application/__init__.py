"""The scheduler's use cases: commands and queries over courses and calendars, with no HTTP and no SQL of others."""
