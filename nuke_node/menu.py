"""Nuke GUI startup (menu.py): the DVFace entry in the Nodes toolbar."""

import nuke

import dvface_nuke

nuke.menu("Nodes").addMenu("DVFace").addCommand("DVFace Restore", dvface_nuke.create_node)
