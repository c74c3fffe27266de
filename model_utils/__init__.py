"""Model building blocks: the config the model is built from, its noise channels, flows,
marginals, losses, activations, Gaussian densities, learning-rate schedules and precision."""
