"""hotdash-watch."""
