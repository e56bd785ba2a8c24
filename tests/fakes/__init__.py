"""In-process fakes of APIs that cannot be installed here; each says how faithful it is."""
