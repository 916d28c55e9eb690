"""What the tests and the benchmarks both use: photos from installed packages, a PostgreSQL server,
the models without their coarse passes, the flip similarity sets, and the systems only tests start
(testkit/systems.py, on deploy/launcher.py's stack).

Neither production code (api/, worker/, shared/, deploy/) nor the Docker images import it.
"""
