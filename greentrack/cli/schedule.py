"""Commands: placeholder until implemented."""
