"""Training: data, degradation on the fly, the four stages and the loop that runs them."""
