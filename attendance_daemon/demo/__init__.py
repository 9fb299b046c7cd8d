"""Sample data for the demo, tests and benchmarks: real faces from registry packages, synthetic classrooms.

Never imported by the daemon at run time; it fetches from the package registry, which an appliance need not reach."""
