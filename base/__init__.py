"""The bottom layer: errors, atomic files, repository paths and hashing. Imports nothing else of the project."""
