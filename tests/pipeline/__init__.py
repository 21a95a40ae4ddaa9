"""The job pipeline and its guarantees: the Python API, nothing paid for lost or paid twice, batches."""
