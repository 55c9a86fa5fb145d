"""The paper's figures (method 8), one module per figure; ``style`` holds the shared look."""
