"""The service's own words: statuses, steps, the extracted product and its descriptions, and
step errors. Every other package builds on these; this package imports nothing of the project."""
