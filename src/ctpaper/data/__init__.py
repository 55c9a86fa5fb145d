"""Raw-data acquisition and preparation of the nine datasets (method.md section 2)."""
