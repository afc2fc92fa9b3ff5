# Stamped by clients/stamp_version.py (`make clients`) from the service version.
__version__ = "0.1.0"
