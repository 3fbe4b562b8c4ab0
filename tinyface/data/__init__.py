"""Face data: folder-per-person datasets, the LFW protocol, alignment, caching, splits."""
