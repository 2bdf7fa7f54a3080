"""Archive-scale restoration (`dvface batch`): many clips split into chunks run by Ray actors.
A pipeline: uses wholeframe, engine, faces, media and runtime; the command lives in `commands.batch`.
"""
