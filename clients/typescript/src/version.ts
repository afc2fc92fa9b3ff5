// Stamped by clients/stamp_version.py (`make clients`) from the service version.
export const VERSION = "0.1.0";
