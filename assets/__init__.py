"""Result assets and their checks."""
