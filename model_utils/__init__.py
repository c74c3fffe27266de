"""Model building blocks for the echo rate-distortion experiments."""
