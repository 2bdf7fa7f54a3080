"""One module per `dvface` command (`cli.COMMAND_MODULES` lists them): arguments, then a call
into the library. Nothing below imports from here.
"""
