"""Whole-frame restoration: face tracks in, every chosen face restored and pasted back, frames out."""
