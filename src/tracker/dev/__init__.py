"""Local services and the demo, for development, tests and benchmarks only: nothing in src/tracker outside this package imports it."""
