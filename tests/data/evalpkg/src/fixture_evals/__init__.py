"""A third-party eval package for tests/test_eval_packages.py."""
