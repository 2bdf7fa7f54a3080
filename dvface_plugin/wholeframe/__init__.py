"""Whole-frame restoration: face tracks in, every chosen face restored and pasted back, frames out.
A pipeline over engine, faces, media and runtime.
"""
