"""Parameter inversion (fitting models to recordings). Built in the fitting issue."""
