"""Pieces every stage shares: errors, typed configuration, run directories, tool processes, metrics."""
