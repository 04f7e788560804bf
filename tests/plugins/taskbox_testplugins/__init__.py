"""Executors used by the tests as a third-party plugin would ship them (see the dist-info beside)."""
