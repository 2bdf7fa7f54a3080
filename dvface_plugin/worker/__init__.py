"""The restoration worker (`dvface serve`) and the standard-library client hosts use to drive it.

Importing this package loads neither torch nor OpenEXR: a host's own Python (Nuke's) imports
`client` and `protocol` only, while the worker runs in its own environment.
"""
