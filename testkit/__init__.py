"""What the tests and the benchmarks both use: photos from installed packages, a PostgreSQL server.

Neither production code (api/, worker/, shared/, deploy/) nor the Docker images import it.
"""
