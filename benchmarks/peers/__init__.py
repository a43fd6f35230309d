"""The comparison workload implemented in peer frameworks, plus a bare confluent-kafka loop as the floor.

Each module is a standalone program (``python -m benchmarks.peers.<name> --help``) with the same flags, so
``benchmarks.run_all`` can start any of them as one process against the same broker and input.
"""
