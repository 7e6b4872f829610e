"""Fixture functions, one module per op group; batch_forge.fixtures imports them all."""
