"""Support for the test suite and the benchmarks; pytest collects nothing here.

`json_server`: the real json-server (0.17 and 1.0), installed with npm into a git-ignored folder
and started on a free port, as a target for end-to-end tests, the soak and the benchmarks.
"""
