"""Post-processing of solved fields: statistics per particle, histograms."""
