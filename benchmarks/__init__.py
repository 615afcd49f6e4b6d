"""Built-in benchmark plugins: each module registers benchmarks through ``register_benchmarks``."""
