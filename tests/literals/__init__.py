"""Tests for taskbox.literals (a package so module names cannot clash with other test folders)."""
