"""Local services and the demo, for development and tests only: nothing outside scripts/ and tests/ imports this package."""
