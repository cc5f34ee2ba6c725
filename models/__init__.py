"""The model zoo: one small module per model family, each with its literature reference."""
