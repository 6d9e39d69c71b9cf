"""The version of cnnprof: one place, read by the package, its metadata and the environment
fingerprint (``timing.environment``) without importing anything else."""

__version__ = "0.1.0"
